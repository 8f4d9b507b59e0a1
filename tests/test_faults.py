"""Faults under a write load through real gunicorn: a SIGKILLed worker (no acknowledged write
is lost, the master replaces it), PostgreSQL cut and PostgreSQL black-holed behind a proxy (503
problems in bounded time, recovery without a restart).

Real gunicorn (two workers), real PostgreSQL, real HTTP; threads post creates meanwhile. A
create answered 201 was committed before its answer, so it must exist afterwards; requests the
dead worker was holding fail at the connection (the client may retry them), never with a 5xx.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from tests.conftest import upgrade
from tests.services import require_redis, temporary_postgres_database
from tests.tcp_proxy import TcpProxy
from tests.test_gunicorn import STARTUP_SECONDS, WORKERS, Server, running, scrape

pytestmark = pytest.mark.e2e

WRITERS = 4
LOAD_SECONDS = 4.0
KILL_AFTER_SECONDS = 1.5
BOOTED = re.compile(r"Booting worker with pid: (\d+)")


def worker_pids(server: Server) -> list[int]:
    return [int(m.group(1)) for m in BOOTED.finditer(server.log.read_text())]


def post_answer(server: Server, name: str) -> tuple[int | str, str, str | None]:
    """(status or connection failure, content type, Retry-After) of one create."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    try:
        body = json.dumps({"name": name}).encode()
        connection.request(
            "POST", "/api/v1/hello/greetings", body, {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        return (
            response.status,
            response.getheader("Content-Type", ""),
            response.getheader("Retry-After"),
        )
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, "", None
    finally:
        connection.close()


def post_create(server: Server, name: str) -> int | str:
    """The status of one create, or the kind of connection failure."""
    return post_answer(server, name)[0]


def test_sigkilled_worker_loses_no_acknowledged_write(  # noqa: PLR0915 - one scenario, read top to bottom
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with temporary_postgres_database() as url:
        migrating = create_app(
            {"ENVIRONMENT": "testing", "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": url}
        )
        upgrade(migrating)
        migrating.extensions["powerstrip.database"].engine.dispose()
        env = {"POWERSTRIP_DATABASE_URL": url, "POWERSTRIP_RATELIMIT_ENABLED": "false"}
        with running(tmp_path, env) as server:
            answers: dict[str, int | str] = {}
            lock = threading.Lock()
            stop = threading.Event()

            def writer(number: int) -> None:
                while not stop.is_set():
                    name = f"w{number}-{uuid.uuid4().hex[:8]}"
                    status = post_create(server, name)
                    with lock:
                        answers[name] = status

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
            for thread in threads:
                thread.start()
            time.sleep(KILL_AFTER_SECONDS)
            victim = worker_pids(server)[0]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            time.sleep(LOAD_SECONDS - KILL_AFTER_SECONDS)
            stop.set()
            for thread in threads:
                thread.join(15)
            deadline = time.monotonic() + STARTUP_SECONDS
            while len(worker_pids(server)) < WORKERS + 1:  # the master boots a replacement
                assert time.monotonic() < deadline, "the killed worker was not replaced"
                time.sleep(0.1)
            replaced = worker_pids(server)[-1]
            replacement_seconds = round(time.monotonic() - killed_at, 3)
            assert server.request("GET", "/api/v1/health/live")[0].status == 200

        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                stored = set(connection.scalars(text("SELECT name FROM hello_greetings")))
        finally:
            engine.dispose()

    by_status = Counter(str(status) for status in answers.values())
    acknowledged = {name for name, status in answers.items() if status == 201}
    lost = acknowledged - stored
    record_property("requests", len(answers))
    record_property("answers_by_status", dict(by_status))
    record_property("acknowledged_writes_lost", len(lost))
    record_property("replacement_worker", f"{victim} -> {replaced}")
    record_property("worker_replaced_after_seconds", replacement_seconds)  # terminal summary
    with capsys.disabled():  # the counts in the test output (the summary shows *_seconds only)
        print(
            f"\nSIGKILL of worker {victim} under {WRITERS} writers: {len(answers)} creates, "
            f"by answer {dict(sorted(by_status.items()))}, acknowledged writes lost {len(lost)}, "
            f"replaced by {replaced} after {replacement_seconds}s"
        )
    assert not lost
    assert acknowledged, "no create succeeded"
    assert not [status for status in answers.values() if isinstance(status, int) and status >= 500]
    # A connection the dead worker held fails without a (whole) answer: killed before its
    # headers, or between its headers and the end of its body (IncompleteRead); nothing else.
    assert set(by_status) <= {
        "201",
        "RemoteDisconnected",
        "ConnectionResetError",
        "BrokenPipeError",
        "IncompleteRead",
    }


CUT_SECONDS = 3.0
RECOVERY_SECONDS = 2.0
PHASES = ("before", "fault", "restored", "recovered")


@dataclass(frozen=True)
class Answer:
    """One create of a load through a proxy that fails: when it started, and how it ended."""

    phase: str
    name: str
    status: int | str
    kind: str
    retry_after: str | None
    seconds: float


def write_load_through_failing_proxy(
    tmp_path: Path, fault: Callable[[TcpProxy], None], env: dict[str, str]
) -> tuple[list[Answer], set[str]]:
    """Real gunicorn, its PostgreSQL behind a proxy, :data:`WRITERS` threads creating: 1 s of
    load, ``fault`` for :data:`CUT_SECONDS`, the proxy restored, :data:`RECOVERY_SECONDS`,
    then 1 s more (phase ``recovered``: the database was back when they started). Returns
    every answer and the names stored at the end."""
    with temporary_postgres_database() as url:
        migrating = create_app(
            {"ENVIRONMENT": "testing", "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": url}
        )
        upgrade(migrating)
        migrating.extensions["powerstrip.database"].engine.dispose()
        real = make_url(url)
        answers: list[Answer] = []
        with TcpProxy((real.host or "127.0.0.1", real.port or 5432)) as proxy:
            env = {
                "POWERSTRIP_DATABASE_URL": real.set(port=proxy.port).render_as_string(False),
                "POWERSTRIP_RATELIMIT_ENABLED": "false",
                "POWERSTRIP_DATABASE_CONNECT_TIMEOUT": "2",
                **env,
            }
            with running(tmp_path, env) as server:
                lock = threading.Lock()
                stop = threading.Event()
                phase = [PHASES[0]]

                def writer(number: int) -> None:
                    while not stop.is_set():
                        name = f"w{number}-{uuid.uuid4().hex[:8]}"
                        current = phase[0]
                        started = time.perf_counter()
                        status, kind, retry_after = post_answer(server, name)
                        seconds = time.perf_counter() - started
                        with lock:
                            answers.append(
                                Answer(current, name, status, kind, retry_after, seconds)
                            )

                threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
                for thread in threads:
                    thread.start()
                time.sleep(1.0)
                phase[0] = "fault"
                fault(proxy)
                time.sleep(CUT_SECONDS)
                phase[0] = "restored"
                proxy.restore()
                time.sleep(RECOVERY_SECONDS)
                phase[0] = "recovered"
                time.sleep(1.0)
                stop.set()
                for thread in threads:
                    thread.join(30)
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                stored = set(connection.scalars(text("SELECT name FROM hello_greetings")))
        finally:
            engine.dispose()
    return answers, stored


def by_phase(answers: list[Answer]) -> dict[str, dict[str, int]]:
    return {
        name: dict(Counter(str(a.status) for a in answers if a.phase == name)) for name in PHASES
    }


def assert_503_problems_then_recovery(answers: list[Answer], stored: set[str]) -> None:
    """Nothing acknowledged lost; only 201s and 503 problems with Retry-After; 201s only once
    the database is back."""
    phases = by_phase(answers)
    assert not {a.name for a in answers if a.status == 201} - stored
    unavailable = [a for a in answers if a.status == 503]
    assert unavailable, phases  # the fault was seen
    for answer in unavailable:
        assert answer.kind == "application/problem+json"
        assert answer.retry_after is not None
        assert int(answer.retry_after) > 0
    assert {a.status for a in answers} <= {201, 503}, phases
    assert set(phases["recovered"]) == {"201"}, phases  # also: some were answered


def report(
    what: str,
    answers: list[Answer],
    stored: set[str],
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    lost = {a.name for a in answers if a.status == 201} - stored
    slowest = round(max(a.seconds for a in answers), 3)
    record_property("answers_by_phase", by_phase(answers))
    record_property("acknowledged_writes_lost", len(lost))
    record_property("slowest_answer_seconds", slowest)  # terminal summary
    with capsys.disabled():
        print(
            f"\nPostgreSQL {what} for {CUT_SECONDS}s under {WRITERS} writers: "
            f"{len(answers)} creates, by phase {by_phase(answers)}, "
            f"acknowledged writes lost {len(lost)}, slowest answer {slowest}s"
        )


def test_postgres_cut_under_load_answers_503_and_recovers_without_a_restart(
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The proxy cut (connections severed, new ones refused) under a write load, then
    restored: 503 problems with Retry-After meanwhile, no other error, every acknowledged write
    stored, 201s again without a restart."""
    answers, stored = write_load_through_failing_proxy(tmp_path, TcpProxy.cut, {})
    report("cut", answers, stored, record_property, capsys)
    assert_503_problems_then_recovery(answers, stored)


BLACKHOLE_READ_TIMEOUT = 2  # seconds (DATABASE_READ_TIMEOUT; the statement timeout below it)
# The longest a request may take while PostgreSQL is silent: its pool ping given up after the
# read timeout, one new connection given up after the connect timeout (2 s); the margin is for
# a loaded machine.
BLACKHOLE_BOUND_SECONDS = BLACKHOLE_READ_TIMEOUT + 2 + 2.0


def test_postgres_black_holed_under_load_answers_503_in_bounded_time_and_recovers(
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The proxy stops forwarding without closing anything (open connections stay open, new
    ones are accepted, not a byte comes back: a hung server, packets dropped), under a write
    load, then restored: every request answers within a bound (a 503 problem, or a 201 for a
    write that had its answer) instead of waiting for the outage to end; nothing acknowledged
    is lost; 201s again without a restart."""
    env = {
        "POWERSTRIP_DATABASE_READ_TIMEOUT": str(BLACKHOLE_READ_TIMEOUT),
        "POWERSTRIP_DATABASE_STATEMENT_TIMEOUT": "1000",
    }
    answers, stored = write_load_through_failing_proxy(tmp_path, TcpProxy.blackhole, env)
    report("black-holed", answers, stored, record_property, capsys)
    assert_503_problems_then_recovery(answers, stored)
    assert max(a.seconds for a in answers) < BLACKHOLE_BOUND_SECONDS


def get_status(server: Server, path: str) -> int | str:
    """The status of a GET, or the kind of connection failure."""
    try:
        return server.request("GET", path)[0].status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


FALLBACK = "powerstrip_rate_limit_storage_fallback"
REDIS_RECOVERY_SECONDS = 20.0  # flask-limiter pings a dead storage after 1, 2, 4, 8... seconds
# A request while Redis is cut or silent: at most its connect and read timeouts (0.5 + 0.25 s)
# before the in-memory counters answer; the margin is for a loaded machine.
REDIS_BOUND_SECONDS = 2.0


@pytest.mark.parametrize("fault", [TcpProxy.cut, TcpProxy.blackhole], ids=["cut", "blackhole"])
def test_redis_lost_under_load_fails_open_to_memory_and_comes_back(
    tmp_path: Path,
    fault: Callable[[TcpProxy], None],
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real gunicorn counting its limits in Redis behind a proxy, under a read load; Redis cut
    (or silent) for a while, then back: every request is answered 200 within a bound
    (limits fail open to per-process memory), each worker warns and counts the switch,
    readiness stays 200 with Redis degraded, and the workers count in Redis again."""
    require_redis()
    upgrade(create_app({"ENVIRONMENT": "testing", "INSTANCE_PATH": str(tmp_path)}))
    answers: list[tuple[str, int | str, float]] = []
    with TcpProxy(("127.0.0.1", 6379)) as proxy:
        env = {
            "POWERSTRIP_RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{proxy.port}/15",
            "POWERSTRIP_RATELIMIT_KEY_PREFIX": f"faults-{uuid.uuid4().hex}",
            "POWERSTRIP_RATELIMIT_DEFAULT": '["100000/minute"]',
        }
        with running(tmp_path, env) as server:
            lock = threading.Lock()
            stop = threading.Event()
            phase = ["before"]

            def reader() -> None:
                while not stop.is_set():
                    current, started = phase[0], time.perf_counter()
                    status = get_status(server, "/api/v1/hello/greetings")
                    with lock:
                        answers.append((current, status, time.perf_counter() - started))

            threads = [threading.Thread(target=reader) for _ in range(WRITERS)]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            phase[0] = "fault"
            fault(proxy)
            time.sleep(CUT_SECONDS)
            during = scrape(server)
            ready, body = server.request("GET", "/api/v1/health/ready")
            phase[0] = "restored"
            proxy.restore()
            deadline = time.monotonic() + REDIS_RECOVERY_SECONDS
            while scrape(server).get(FALLBACK, 0) > 0:  # until every worker counts in Redis
                assert time.monotonic() < deadline, "the workers did not go back to Redis"
                time.sleep(0.5)
            recovered_seconds = round(REDIS_RECOVERY_SECONDS - (deadline - time.monotonic()), 1)
            stop.set()
            for thread in threads:
                thread.join(15)
        warnings = [
            line
            for line in server.log_lines()
            if line.get("message")
            == "rate limit storage unreachable: counting in memory, per process"
        ]

    statuses = {
        phase_: dict(Counter(str(s) for p, s, _ in answers if p == phase_))
        for phase_ in ("before", "fault", "restored")
    }
    slowest = round(max(seconds for *_, seconds in answers), 3)
    record_property("answers_by_phase", statuses)
    record_property("slowest_answer_seconds", slowest)
    record_property("back_to_redis_after_seconds", recovered_seconds)
    with capsys.disabled():
        print(
            f"\nRedis {fault.__name__} for {CUT_SECONDS}s under {WRITERS} readers: "
            f"{len(answers)} requests, by phase {statuses}, slowest answer {slowest}s, "
            f"fallbacks counted {during.get(FALLBACK + 's_total', 0):g}, "
            f"every worker back on Redis {recovered_seconds}s after the restore"
        )
    assert {status for _, status, _ in answers} == {200}, statuses
    assert slowest < REDIS_BOUND_SECONDS
    assert during.get(FALLBACK, 0) >= 1  # workers counting in memory
    assert during.get(FALLBACK + "s_total", 0) >= 1
    assert warnings  # each worker that switched says so
    assert ready.status == 200
    assert json.loads(body)["checks"]["redis"]["status"] == "degraded"
