"""Slow clients (slowloris) against gunicorn alone, and behind the shipped deploy/nginx.conf.

gunicorn's gthread workers give a connection a thread from its first byte until its headers are
read, with no deadline: 32 connections dribbling headers hold the 2 x 4 threads and nobody else
is answered. nginx reads requests itself and hands gunicorn only complete ones. Real processes:
gunicorn as ``make run`` starts it, and nginx (run as the current user, everything in a
temporary directory, on loopback ports) with the very file compose.yaml mounts.
"""

from __future__ import annotations

import getpass
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.test_gunicorn import ROOT, STARTUP_SECONDS, free_port, free_ports, running

pytestmark = pytest.mark.e2e

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
SLOW_CLIENTS = 32
DRIBBLE_INTERVAL = 0.5  # seconds between two bytes of a slow client
BOUND = 1.0  # seconds: what any other request must be answered within
PROBES = 8
PROBE_TIMEOUT = 3.0
HEADER_TIMEOUT = 10.0  # client_header_timeout in deploy/nginx.conf
LONGEST = 8188  # bytes of a request line or header field nginx passes on, CRLF not counted
LIVE = "/api/v1/health/live"
# gunicorn as deployed (gunicorn.conf.py's threads, two workers as on this 2-core CI machine),
# configured for one proxy in front as compose.yaml does.
GUNICORN_ENV = {"GUNICORN_THREADS": "4", "POWERSTRIP_TRUSTED_PROXY_COUNT": "1"}


def nginx_binary() -> str:
    """nginx's path: failing under CI=true, skipping elsewhere, when it is not installed."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    message = "nginx is not installed (apt-get install -y nginx)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} and CI=true requires it")
    pytest.skip(f"{message}; CI requires it")


def render(directory: Path, port: int, upstream_port: int) -> str:
    """deploy/nginx.conf for this machine: loopback ports, its files in ``directory``."""
    text = NGINX_CONF.read_text()
    user = (
        f"user {getpass.getuser()};"  # root's workers would otherwise run as nobody
        if os.geteuid() == 0
        else ""  # an unprivileged master cannot switch users
    )
    for old, new in (
        ("user nginx;", user),
        ("pid /var/run/nginx.pid;", f"pid {directory / 'nginx.pid'};"),
        ("listen 8000 default_server;", f"listen 127.0.0.1:{port} default_server;"),
        ("server app:8000;", f"server 127.0.0.1:{upstream_port};"),
    ):
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    temporary = "_temp_path /var/cache/nginx/"
    assert text.count(temporary) == 5, "the five temporary paths moved"
    return text.replace(temporary, f"_temp_path {directory}/")


@contextmanager
def nginx(tmp_path: Path, upstream_port: int, *, ready_path: str = LIVE) -> Iterator[int]:
    """nginx with the shipped configuration in front of ``upstream_port``; yields its port.

    Answering ``ready_path`` with anything but a connection error counts as started.
    """
    binary = nginx_binary()
    directory = tmp_path / "nginx"
    directory.mkdir()
    port = next(port for port in free_ports(2) if port != upstream_port)  # a closed upstream's too
    conf = directory / "nginx.conf"
    conf.write_text(render(directory, port, upstream_port))
    log = directory / "nginx.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            # -e: the log of start-up errors, before the configuration's own is opened (the
            # Debian build's default is the system's /var/log/nginx/error.log).
            [binary, "-e", "stderr", "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, f"nginx stopped:\n{log.read_text()}"
            try:
                get(port, ready_path)
                break
            except OSError:
                assert time.monotonic() < deadline, f"nginx did not answer:\n{log.read_text()}"
                time.sleep(0.1)
        yield port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown: open connections are closed
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when shutdown hangs
            process.kill()
            code = process.wait(timeout=10)
        assert code == 0, log.read_text()
        assert "[emerg]" not in log.read_text(), log.read_text()


def get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = PROBE_TIMEOUT
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a connection of its own, as another client would send it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


@dataclass
class SlowClients:
    """Connections each sending a request line and headers a byte at a time, never finishing.

    ``closed`` holds the seconds after the start at which the server closed each connection.
    """

    port: int
    count: int = SLOW_CLIENTS
    started: float = 0.0
    closed: list[float] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    REQUEST = (
        b"GET /api/v1/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
        + b"X-Padding: "
        + b"a" * 4000  # more than the test lasts at a byte every DRIBBLE_INTERVAL
    )

    def _dribble(self, sock: socket.socket) -> None:
        sent = 0
        try:
            for byte in self.REQUEST:
                sock.sendall(bytes([byte]))
                sent += 1
                if self._stop.wait(DRIBBLE_INTERVAL):
                    return
                try:  # the server gave up on us: end of file, or a reset
                    if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                        break
                except BlockingIOError:
                    continue
            else:  # pragma: no cover - the request is longer than any test waits
                return
        except OSError:  # reset (nginx resets timed-out connections) or broken pipe
            pass
        finally:
            with self._lock:
                self.sent.append(sent)
        with self._lock:
            self.closed.append(time.monotonic() - self.started)

    @contextmanager
    def running(self) -> Iterator[SlowClients]:
        sockets = [
            socket.create_connection(("127.0.0.1", self.port), timeout=5) for _ in range(self.count)
        ]
        for sock in sockets:
            sock.settimeout(None)  # blocking: a timeout would make recv(MSG_DONTWAIT) wait
        threads = [threading.Thread(target=self._dribble, args=(sock,)) for sock in sockets]
        self.started = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=5)
            for sock in sockets:
                sock.close()
            assert not any(thread.is_alive() for thread in threads)

    def wait_closed(self, timeout: float) -> None:
        """Until the server closed every connection, or ``timeout`` after the start."""
        while time.monotonic() - self.started < timeout:
            with self._lock:
                if len(self.closed) == self.count:
                    return
            time.sleep(0.1)


@dataclass
class Probe:
    status: int | None  # None: no answer within PROBE_TIMEOUT
    seconds: float


def probe(port: int, count: int = PROBES, gap: float = 0.25) -> list[Probe]:
    """``count`` liveness requests from other clients, one after another."""
    probes = []
    for _ in range(count):
        started = time.monotonic()
        try:
            response, _ = get(port, LIVE)
            status: int | None = response.status
        except TimeoutError:
            status = None
        probes.append(Probe(status, time.monotonic() - started))
        time.sleep(gap)
    return probes


def slowloris(port: int) -> tuple[list[Probe], SlowClients]:
    """32 slow clients on ``port``, then probes once they all have sent a byte or two."""
    with SlowClients(port).running() as slow:
        time.sleep(3 * DRIBBLE_INTERVAL)  # every slow connection accepted and sending
        probes = probe(port)
        probed = time.monotonic() - slow.started
        slow.wait_closed(HEADER_TIMEOUT + 4)
    with slow._lock:
        assert all(closed >= probed for closed in slow.closed), "closed before the probes ended"
    return probes, slow


def test_nginx_serves_others_while_32_clients_send_headers_slowly(tmp_path: Path) -> None:
    nginx_binary()  # skip before starting gunicorn
    with running(tmp_path, GUNICORN_ENV) as server, nginx(tmp_path, server.port) as port:
        probes, slow = slowloris(port)
        response, _ = get(port, LIVE, {"X-Request-ID": "slow-e2e-1"})
        assert response.status == 200
        assert response.getheader("X-Request-ID") == "slow-e2e-1"  # passed through
        response, _ = get(port, LIVE, {"X-Request-ID": "not a valid id"})
        generated = response.getheader("X-Request-ID") or ""
        assert len(generated) == 32  # nginx's own, which the app took
        int(generated, 16)

        # The longest line and header field nginx passes on, gunicorn takes too: the app answers.
        line = b"GET /" + b"a" * (LONGEST - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
        response, body = raw(port, line + b"\r\nHost: x\r\n\r\n")
        assert problem_of(response, body, 404)["instance"] == line.split()[1].decode()
        field = b"X-Large: " + b"a" * (LONGEST - len(b"X-Large: "))
        request = f"GET {LIVE} HTTP/1.1\r\nHost: x\r\n".encode() + field + b"\r\n\r\n"
        assert raw(port, request)[0].status == 200
        # Three bytes more: gunicorn alone refuses in plain text, before the app.
        longer = line[:5] + b"aaa" + line[5:] + b"\r\nHost: x\r\n\r\n"
        response, body = raw(server.port, longer)
        assert response.status == 414
        assert response.getheader("Content-Type") != "application/problem+json"
    assert [p.status for p in probes] == [200] * PROBES, probes
    assert max(p.seconds for p in probes) < BOUND, probes
    # nginx held all 32 for its client_header_timeout, then closed them (a 408, unanswered).
    assert len(slow.closed) == SLOW_CLIENTS, slow.closed
    assert max(slow.closed) < HEADER_TIMEOUT + 4, slow.closed


def test_gunicorn_alone_stalls_while_32_clients_send_headers_slowly(tmp_path: Path) -> None:
    """Why the proxy: gunicorn alone has no deadline for headers. Fails if gunicorn gains one
    (then revisit README, "Slow clients")."""
    with running(tmp_path, GUNICORN_ENV) as server:
        with SlowClients(server.port).running() as slow:
            time.sleep(3 * DRIBBLE_INTERVAL)
            probes = probe(server.port, count=3)
        # Freed once the slow clients went away.
        assert get(server.port, LIVE)[0].status == 200
    answered_in_time = [p for p in probes if p.status == 200 and p.seconds < BOUND]
    assert not answered_in_time, probes
    assert not slow.closed  # gunicorn never gave up on them


def problem_of(response: http.client.HTTPResponse, body: bytes, status: int) -> dict[str, object]:
    assert response.status == status, body
    assert response.getheader("Content-Type") == "application/problem+json"
    document = json.loads(body)
    assert document["status"] == status
    assert document["type"] == "about:blank"
    assert document["title"]
    assert document["detail"]
    assert response.getheader("X-Request-ID") == document["request_id"]
    return dict(document)


def raw(port: int, data: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    """Send bytes http.client would refuse to, and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response, response.read()


def test_nginx_answers_its_own_refusals_as_problems(tmp_path: Path) -> None:
    """Refused by nginx before any upstream is asked: here there is none (a closed port)."""
    with nginx(tmp_path, free_port()) as port:
        problem = problem_of(*get(port, LIVE, {"X-Request-ID": "e2e-502"}), 502)
        assert problem["request_id"] == "e2e-502"

        # One byte over MAX_CONTENT_LENGTH: refused on its Content-Length, before the body.
        head = b"POST /api/v1/tasks/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577"
        problem_of(*raw(port, head + b"\r\n\r\n"), 413)

        # Each line at most 8188 bytes (with its CRLF, one 8190-byte buffer), within gunicorn's.
        line = b"GET /" + b"a" * (LONGEST - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
        assert len(line) == LONGEST
        assert raw(port, line + b"\r\nHost: x\r\n\r\n")[0].status == 502  # passed on
        problem_of(*raw(port, line[:5] + b"a" + line[5:] + b"\r\nHost: x\r\n\r\n"), 414)

        field = b"X-Large: " + b"a" * (LONGEST - len(b"X-Large: "))
        assert raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + field + b"\r\n\r\n")[0].status == 502
        problem_of(*raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + field + b"a\r\n\r\n"), 431)
        fields = b"".join(b"X-%d: %s\r\n" % (n, b"a" * 8000) for n in range(5))  # 40 KB
        problem_of(*raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"), 431)

        problem_of(*raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"), 400)
        problem_of(*raw(port, b"GET / HTTP/1.1\r\n\r\n"), 400)  # no Host
        problem_of(*raw(port, b"NOT HTTP\r\n\r\n"), 400)
        problem_of(*get(port, "/_problem/400"), 404)  # nginx's own pages are internal
