"""End to end: real gunicorn on a free loopback port, real HTTP, real log lines."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.services import REDIS_URL, require_redis
from tests.support import parse_samples

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
STARTUP_SECONDS = 30
WORKERS = 2

pytestmark = pytest.mark.e2e


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports, free now: their sockets are held open together, so
    the kernel cannot hand one port out twice (one at a time, it may)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port() -> int:
    [port] = free_ports(1)
    return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    metrics_port: int = 0

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response, response.read()
        finally:
            connection.close()

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def start(
    tmp_path: Path, env: dict[str, str], port: int | None = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = port or free_port()
    log = tmp_path / "gunicorn.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POWERSTRIP_", "GUNICORN_"))}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(GUNICORN), "--config", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env={
                **clean,
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "GUNICORN_WORKERS": str(WORKERS),
                "GUNICORN_THREADS": "2",
                "POWERSTRIP_INSTANCE_PATH": str(tmp_path),
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, port, log


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - only when shutdown hangs
        process.kill()
        return process.wait(timeout=10)


@contextmanager
def running(tmp_path: Path, env: dict[str, str], workers: int = WORKERS) -> Iterator[Server]:
    """gunicorn (two workers by default) once every worker has booted; stopped (and checked)
    afterwards."""
    api_port, metrics_port = free_ports(2)  # never the same port twice
    process, port, log = start(
        tmp_path,
        {
            "POWERSTRIP_ENVIRONMENT": "development",
            "GUNICORN_WORKERS": str(workers),
            "POWERSTRIP_METRICS_PORT": str(metrics_port),
            **env,
        },
        api_port,
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    server = Server(process, port, log, metrics_port)
    try:
        while log.read_text().count("Booting worker") < workers:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"gunicorn did not start:\n{log.read_text()}"
            time.sleep(0.1)
        while True:
            try:
                server.request("GET", "/api/openapi.json")
                break
            except OSError:
                assert time.monotonic() < deadline, f"gunicorn did not answer:\n{log.read_text()}"
                time.sleep(0.1)
        yield server
    finally:
        assert stop(process) == 0, log.read_text()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running(tmp_path, {}) as started:
        yield started


def test_gunicorn_serves_problems_request_ids_and_json_logs(server: Server) -> None:
    response, body = server.request("GET", "/no/such/path", {"X-Request-ID": "e2e-12345"})
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/problem+json"
    assert response.getheader("X-Request-ID") == "e2e-12345"
    problem = json.loads(body)
    assert problem["status"] == 404
    assert problem["request_id"] == "e2e-12345"
    assert problem["instance"] == "/no/such/path"

    response, body = server.request("GET", "/api/openapi.json")
    assert response.status == 200
    assert json.loads(body)["openapi"] == "3.1.0"
    response, body = server.request("GET", "/api/docs")
    assert response.status == 200
    assert b"swagger-ui-bundle.js" in body

    deadline = time.monotonic() + 10
    while True:
        lines = server.log_lines()  # every line parses as JSON, gunicorn's included
        access = [line for line in lines if line.get("request_id") == "e2e-12345"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    [record] = access
    assert record["logger"] == "app.access"
    assert record["status"] == 404
    assert record["path"] == "/no/such/path"
    assert record["method"] == "GET"
    assert record["remote_addr"] == "127.0.0.1"
    assert any(line.get("logger") == "gunicorn.error" for line in lines)


def test_gunicorn_stops_on_bad_config_with_one_line(tmp_path: Path) -> None:
    process, _, log = start(tmp_path, {"POWERSTRIP_ENVIRONMENT": "production"})
    try:
        code = process.wait(timeout=STARTUP_SECONDS)
    finally:
        stop(process)
    assert code == 4
    assert log.read_text().splitlines() == [
        "powerstrip: configuration key SECRET_KEY: required outside development and testing."
    ]


@pytest.mark.parametrize("storage", ["redis", "memory"])
def test_rate_limit_across_two_workers(tmp_path: Path, storage: str) -> None:
    """Redis holds the limit exactly across workers; memory:// lets each worker count alone."""
    if storage == "redis":
        require_redis()
    env = {
        "POWERSTRIP_RATELIMIT_DEFAULT": '["5/minute"]',
        "POWERSTRIP_RATELIMIT_STORAGE_URI": REDIS_URL if storage == "redis" else "memory://",
        "POWERSTRIP_RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",  # counters of this run only
    }
    with running(tmp_path, env) as server:
        # A new connection per request: the kernel spreads them over both workers (reuse_port).
        statuses = [
            server.request("GET", "/api/v1/hello/greetings/Ada")[0].status for _ in range(12)
        ]
        served_by = {
            line["process"] for line in server.log_lines() if line.get("logger") == "app.access"
        }
    assert set(statuses) <= {200, 429}
    if storage == "redis":
        assert statuses.count(200) == 5
    else:
        assert len(served_by) == WORKERS
        assert 5 < statuses.count(200) <= 5 * WORKERS  # over-admission: why production uses Redis


LIVE = '{method="GET",plugin="health",route="/api/v1/health/live",status="2xx"}'


def scrape(server: Server) -> dict[str, float]:
    """The metrics endpoint's samples: ``name{labels}`` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as answer:
        return parse_samples(answer.read().decode())


def worker_pids(directory: Path) -> set[int]:
    """The processes whose samples (``counter_<pid>.db``) count answered requests."""
    counting = set()
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)], accumulate=False):
            if family.name == "powerstrip_http_requests" and any(
                sample.value > 0 for sample in family.samples
            ):
                counting.add(int(path.stem.rpartition("_")[2]))
    return counting


def test_metrics_add_up_across_workers_on_their_own_port(tmp_path: Path) -> None:
    samples_dir = tmp_path / "samples"
    samples_dir.mkdir()
    (samples_dir / "counter_1.db").write_bytes(b"from a previous run")
    with running(tmp_path, {"PROMETHEUS_MULTIPROC_DIR": str(samples_dir)}) as server:
        assert not (samples_dir / "counter_1.db").exists()  # emptied at start
        sent = 0
        # A new connection per request: the kernel spreads them over both workers' sockets.
        while len(worker_pids(samples_dir)) < WORKERS and sent < 400:
            assert server.request("GET", "/api/v1/health/live")[0].status == 200
            sent += 1
        assert len(worker_pids(samples_dir)) == WORKERS, f"one worker took all {sent} requests"
        samples = scrape(server)
        assert samples[f"powerstrip_http_requests_total{LIVE}"] == sent
        assert samples["powerstrip_http_requests_in_flight"] == 0
        assert samples['powerstrip_plugin_state{plugin="health",state="enabled",version="0.1.0"}']
        assert server.request("GET", "/metrics")[0].status == 404  # not on the API port

        # A worker that dies is replaced; its counts stay in the sums, its live gauges go.
        gone = min(worker_pids(samples_dir))
        assert (samples_dir / f"gauge_livesum_{gone}.db").exists()
        os.kill(gone, signal.SIGTERM)
        deadline = time.monotonic() + STARTUP_SECONDS
        while (samples_dir / f"gauge_livesum_{gone}.db").exists():
            assert time.monotonic() < deadline, "child_exit did not mark the worker dead"
            time.sleep(0.1)
        assert scrape(server)[f"powerstrip_http_requests_total{LIVE}"] == sent
    messages = [str(line["message"]) for line in server.log_lines()]
    assert f"Listening at: http://127.0.0.1:{server.port} ({server.process.pid})" in messages
    assert f"metrics at http://127.0.0.1:{server.metrics_port}/metrics" in messages


def test_metrics_survive_a_reload(tmp_path: Path) -> None:
    """SIGHUP: new workers, the same samples directory; counts and the master's gauges stay."""
    with running(tmp_path, {}) as server:
        for _ in range(5):
            assert server.request("GET", "/api/v1/health/live")[0].status == 200
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + STARTUP_SECONDS
        while server.log.read_text().count("Booting worker") < 2 * WORKERS:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.1)
        assert server.request("GET", "/api/v1/health/live")[0].status == 200
        samples = scrape(server)
        assert samples[f"powerstrip_http_requests_total{LIVE}"] == 6
        assert samples['powerstrip_build_info{version="0.1.0"}'] == 1
        [directory] = [
            Path(str(line["message"]).removeprefix("metrics samples in "))
            for line in server.log_lines()
            if str(line["message"]).startswith("metrics samples in ")
        ]  # one directory: the reload kept it
        assert directory.is_dir()
    assert not directory.exists()  # the master that made it removed it
