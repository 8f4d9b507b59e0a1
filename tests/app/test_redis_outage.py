"""The rate limiter's Redis refusing or hanging, and coming back, through a TCP proxy.

Limits fail open to per-process counters in memory (a warning, a metric), every request is
answered within a bounded delay (the storage's socket timeouts), readiness reports the Redis
``degraded`` with 200, and the limiter goes back to Redis once it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from flask import Flask
from flask_limiter import Limiter

from app.metrics import METRICS, Metrics
from app.ratelimit import counting_in_memory
from powerstrip import Problem, RateLimits
from powerstrip.cli import INJECTOR
from tests.conftest import AppFactory
from tests.services import require_redis
from tests.tcp_proxy import TcpProxy

# Each request with Redis black-holed: at most a connect and a read timeout (0.5 s + 0.25 s by
# default) before the memory fallback answers; generous for a loaded CI machine.
BOUND_SECONDS = 2.0
RECOVERY_SECONDS = 20.0  # flask-limiter pings a dead storage after 1, 2, 4, 8... seconds
LIMIT = 4


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    require_redis()
    with TcpProxy(("127.0.0.1", 6379)) as started:
        yield started


@pytest.fixture
def app(make_app: AppFactory, proxy: TcpProxy) -> Flask:
    return make_app(
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{proxy.port}/15",
        RATELIMIT_DEFAULT=[f"{LIMIT}/minute"],
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",  # counters of this test only
    )


def timed_get(app: Flask, path: str, address: str = "127.0.0.1") -> tuple[int, float, Any]:
    started = time.perf_counter()
    response = app.test_client().get(path, environ_base={"REMOTE_ADDR": address})
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND_SECONDS, f"{path} took {elapsed:.2f}s"
    return response.status_code, elapsed, response.get_json()


def limiter_of(app: Flask) -> Limiter:
    [limiter] = app.extensions["limiter"]
    return cast(Limiter, limiter)


def sample(app: Flask, name: str) -> float | None:
    measured: Metrics = app.extensions[METRICS]
    return measured.registry.get_sample_value(name)


@pytest.mark.parametrize("fault", ["blackhole", "cut"])
def test_limits_fail_open_to_memory_and_readiness_degrades(
    app: Flask,
    proxy: TcpProxy,
    fault: str,
    caplog: pytest.LogCaptureFixture,
    record_property: Callable[[str, object], None],
) -> None:
    assert timed_get(app, "/api/probe/items")[0] == 200  # counted in Redis
    assert timed_get(app, "/api/v1/health/ready")[2]["checks"]["redis"]["status"] == "up"

    getattr(proxy, fault)()  # Redis hangs (accepts, answers nothing) or refuses
    slowest = 0.0
    with caplog.at_level(logging.WARNING):
        status, elapsed, _ = timed_get(app, "/api/v1/health/live")
        assert status == 200
        slowest = max(slowest, elapsed)
        # Counted in memory from zero: the limit still holds, per process.
        statuses = []
        for _ in range(LIMIT + 2):
            status, elapsed, _ = timed_get(app, "/api/probe/items", "127.0.0.7")
            statuses.append(status)
            slowest = max(slowest, elapsed)
        assert statuses == [200] * LIMIT + [429, 429]
        status, elapsed, body = timed_get(app, "/api/v1/health/ready")
    assert counting_in_memory(limiter_of(app))
    assert status == 200  # the instance still serves: stays in the load balancer
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "up"
    redis_check = body["checks"]["redis"]
    assert redis_check["status"] == "degraded"
    assert redis_check["error"] in {"TimeoutError", "ConnectionError"}
    assert "rate limit storage unreachable: counting in memory, per process" in caplog.messages
    assert sample(app, "powerstrip_rate_limit_storage_fallbacks_total") == 1
    assert sample(app, "powerstrip_rate_limit_storage_fallback") == 1
    record_property(f"slowest_request_with_redis_{fault}_seconds", round(slowest, 3))
    record_property(f"ready_with_redis_{fault}_seconds", round(elapsed, 3))

    proxy.restore()  # Redis answers again: back to it, without a restart
    deadline = time.monotonic() + RECOVERY_SECONDS
    waited = 0
    while counting_in_memory(limiter_of(app)):
        assert time.monotonic() < deadline, "the limiter did not go back to Redis"
        # Answered meanwhile; each from an address of its own (the limit is 4 a minute, and
        # flask-limiter may take seconds to try Redis again).
        waited += 1
        assert timed_get(app, "/api/probe/items", f"127.0.1.{waited}")[0] == 200
        time.sleep(0.2)
    timed_get(app, "/api/probe/items", "127.0.0.8")  # the hook notices the switch back
    assert sample(app, "powerstrip_rate_limit_storage_fallback") == 0
    ready = timed_get(app, "/api/v1/health/ready")
    assert (ready[0], ready[2]["status"]) == (200, "ready")


RACERS = 8


@pytest.mark.parametrize("fault", ["blackhole", "cut"])
def test_requests_waiting_on_redis_when_it_fails_all_fail_open(
    app: Flask, proxy: TcpProxy, fault: str
) -> None:
    """Requests already talking to Redis when it fails each meet the error; the first switches
    the limiter to memory, and the others must not 500 for having lost that race."""
    with ThreadPoolExecutor(RACERS) as clients:
        warm = clients.map(lambda n: timed_get(app, "/api/probe/items", f"127.0.2.{n}"), range(8))
        assert {answer[0] for answer in warm} == {200}  # Redis connections open
        getattr(proxy, fault)()
        barrier = threading.Barrier(RACERS)

        def get(number: int) -> int:
            barrier.wait()
            return timed_get(app, "/api/probe/items", f"127.0.1.{number}")[0]

        assert list(clients.map(get, range(RACERS))) == [200] * RACERS
    assert counting_in_memory(limiter_of(app))


def test_plugin_limits_fail_open_to_memory(app: Flask, proxy: TcpProxy) -> None:
    limits = app.extensions[INJECTOR].get(RateLimits)
    limits.hit("someone", "2/minute")  # in Redis
    proxy.blackhole()
    started = time.perf_counter()
    limits.hit("someone", "2/minute")  # in memory now: counted from zero
    limits.hit("someone", "2/minute")
    with pytest.raises(Problem) as refused:
        limits.hit("someone", "2/minute")
    assert refused.value.code == 429
    assert limits.exceeded("someone", "2/minute")
    limits.clear("someone", "2/minute")
    assert not limits.exceeded("someone", "2/minute")
    # Each call waits one read timeout at most (0.25 s) before it counts in memory.
    assert time.perf_counter() - started < 6 * BOUND_SECONDS / 2
