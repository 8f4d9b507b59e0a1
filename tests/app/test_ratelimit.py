"""Rate limiting: 429 problems, headers, exemptions and shared Redis storage."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import redis
from flask import Flask
from flask_limiter import Limiter
from flask_limiter._manager import LimitManager
from flask_limiter.util import get_remote_address

from app import create_app
from app.config import HostConfig
from app.counters import LazyMemoryStorage
from app.ratelimit import (
    PER_PROCESS_WARNING,
    RequestLimits,
    counting_in_memory,
    redis_client,
    storage_errors,
)
from tests.conftest import AppFactory
from tests.spies import record_calls

REDIS_URL = os.environ.get("POWERSTRIP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def require_redis() -> None:
    if redis_reachable():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("Redis is not reachable on 127.0.0.1:6379 and CI=true requires it")
    pytest.skip("Redis is not reachable on 127.0.0.1:6379 (CI requires it)")


def test_limit_exceeded_is_a_429_problem_with_retry_after(make_app: AppFactory) -> None:
    client = make_app(RATELIMIT_DEFAULT=["2/minute"]).test_client()
    first = client.get("/api/probe/items")
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert "Retry-After" not in first.headers
    assert client.get("/api/probe/items").status_code == 200
    limited = client.get("/api/probe/items", headers={"X-Request-ID": "slow-down"})
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    body = limited.get_json()
    assert body["status"] == 429
    assert body["request_id"] == "slow-down"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"


def test_limits_are_per_client_address(make_app: AppFactory) -> None:
    client = make_app(RATELIMIT_DEFAULT=["1/minute"]).test_client()
    assert client.get("/api/probe/items").status_code == 200
    assert client.get("/api/probe/items").status_code == 429
    other = client.get("/api/probe/items", environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 200


def test_docs_and_spec_are_exempt(make_app: AppFactory) -> None:
    client = make_app(RATELIMIT_DEFAULT=["1/minute"]).test_client()
    for _ in range(3):
        assert client.get("/api/openapi.json").status_code == 200
        assert client.get("/api/docs").status_code == 200
        with client.get("/api/docs/assets/swagger-ui.css") as asset:
            assert asset.status_code == 200


def request_limits(app: Flask) -> RequestLimits:
    """The app's :class:`RequestLimits` (its before-request hook's owner)."""
    [fused] = app.before_request_funcs[None]  # PowerstripFlask.fuse_request_hooks
    [check] = [hook for hook in fused.hooks if hook.__name__ == "check"]  # type: ignore[attr-defined]
    owner = getattr(check, "__self__", None)
    assert isinstance(owner, RequestLimits)
    return owner


def test_exempt_blueprints_are_never_counted(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    increments = record_calls(monkeypatch, LazyMemoryStorage, "incr")
    checks = record_calls(monkeypatch, Limiter, "_check_request_limit")
    client = make_app(RATELIMIT_DEFAULT=["1/minute"]).test_client()
    for path in ("/api/openapi.json", "/api/v1/health/live", "/api/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers
    assert increments == []
    assert client.get("/api/probe/items").headers["X-RateLimit-Limit"] == "1"
    assert len(increments) == 1
    assert checks == []  # flask-limiter's own check is not needed for plain limits


def test_a_request_costs_one_increment_and_at_most_one_read(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flask-limiter's own check also reads the count and the window's end back: with Redis,
    two more round trips a request."""
    calls: dict[str, list[tuple[object, ...]]] = {
        name: record_calls(monkeypatch, LazyMemoryStorage, name)
        for name in ("incr", "get", "get_expiry")
    }
    client = make_app(RATELIMIT_DEFAULT=["5/minute"]).test_client()
    first = client.get("/api/probe/items")  # starts the window: nothing to read
    assert {name: len(made) for name, made in calls.items()} == {
        "incr": 1,
        "get": 0,
        "get_expiry": 0,
    }
    second = client.get("/api/probe/items")
    assert {name: len(made) for name, made in calls.items()} == {
        "incr": 2,
        "get": 0,
        "get_expiry": 1,
    }
    assert [first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]] == [
        "4",
        "3",
    ]
    assert first.headers["X-RateLimit-Reset"] == second.headers["X-RateLimit-Reset"]


def answers(app: Flask, count: int) -> list[tuple[int, dict[str, str]]]:
    """Status and rate-limit headers of ``count`` GETs of the probe's items."""
    client = app.test_client()
    names = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")
    seen = []
    for _ in range(count):
        response = client.get("/api/probe/items")
        assert not any(name.startswith("X-Powerstrip-") for name, _ in response.headers)
        seen.append(
            (response.status_code, {n: response.headers[n] for n in names if n in response.headers})
        )
    return seen


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        (["2/minute", "100/hour"], ["2", "2", "2", "2"]),
        # The longer window breached first: the headers name the first, then the breached one.
        (["5/minute", "2/hour"], ["5", "5", "2", "2"]),
    ],
)
@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_plain_limits_answer_as_flask_limiters_own_check(
    make_app: AppFactory,
    monkeypatch: pytest.MonkeyPatch,
    storage: str,
    limits: list[str],
    named: list[str],
) -> None:
    settings: dict[str, object] = {"RATELIMIT_DEFAULT": limits}
    if storage == "redis":
        require_redis()
        settings["RATELIMIT_STORAGE_URI"] = REDIS_URL
    checks = record_calls(monkeypatch, Limiter, "_check_request_limit")
    ours = make_app(**settings, RATELIMIT_KEY_PREFIX=f"ours-{uuid.uuid4().hex}")
    theirs = make_app(**settings, RATELIMIT_KEY_PREFIX=f"theirs-{uuid.uuid4().hex}")
    request_limits(theirs)._plain = False  # every route goes to flask-limiter's own check
    mine, its = answers(ours, 4), answers(theirs, 4)
    assert len(checks) == 4  # theirs only
    assert [status for status, _ in mine] == [200, 200, 429, 429]
    assert [status for status, _ in its] == [200, 200, 429, 429]
    assert [headers["X-RateLimit-Limit"] for _, headers in mine] == named
    for (_, got), (_, expected) in zip(mine, its, strict=True):
        assert got.keys() == expected.keys()
        assert (got["X-RateLimit-Limit"], got["X-RateLimit-Remaining"]) == (
            expected["X-RateLimit-Limit"],
            expected["X-RateLimit-Remaining"],
        )
        # The same second, or the next (the requests are not made at the same instant).
        assert abs(int(got["X-RateLimit-Reset"]) - int(expected["X-RateLimit-Reset"])) <= 1
        if "Retry-After" in expected:
            assert 0 < int(got["Retry-After"]) <= 3600
            assert abs(int(got["Retry-After"]) - int(expected["Retry-After"])) <= 1


def test_counts_carry_over_to_flask_limiters_own_check(make_app: AppFactory) -> None:
    """The same storage keys: a request counted here counts there (when the storage fails and
    comes back, say)."""
    app = make_app(RATELIMIT_DEFAULT=["3/minute"])
    client = app.test_client()
    assert client.get("/api/probe/items").headers["X-RateLimit-Remaining"] == "2"
    limits = request_limits(app)
    limits._plain = False
    limits._routes.clear()
    assert client.get("/api/probe/items").headers["X-RateLimit-Remaining"] == "1"
    limits._plain = True
    limits._routes.clear()
    assert client.get("/api/probe/items").headers["X-RateLimit-Remaining"] == "0"


def busy(retry_after: str) -> tuple[str, int, dict[str, str]]:
    """A view's own 429 (a plugin's limit, say), with its own Retry-After."""
    return "busy", 429, {"Retry-After": retry_after}


@pytest.mark.parametrize(
    ("given", "expected"),
    [("3600", range(3590, 3601)), ("soon", None), ("1.5", None), ("9" * 400, None)],
)
def test_a_views_own_429_keeps_the_later_retry_after(
    make_app: AppFactory, given: str, expected: range | None
) -> None:
    """As flask-limiter does: the later of the view's and the window's; one it cannot read is
    left as the view wrote it (never a 500)."""
    app = make_app(RATELIMIT_DEFAULT=["5/minute"])
    app.add_url_rule("/api/busy/<retry_after>", view_func=busy)
    answer = app.test_client().get(f"/api/busy/{given}")
    assert answer.status_code == 429
    assert answer.headers["X-RateLimit-Remaining"] == "4"
    if expected is None:
        assert answer.headers["Retry-After"] == given
    else:
        assert int(answer.headers["Retry-After"]) in expected


def logged(capsys: pytest.CaptureFixture[str], logger: str) -> list[str]:
    """The messages ``logger`` wrote (JSON lines on stdout, as the app writes them)."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [line["message"] for line in lines if line["logger"] == logger]


def test_a_breach_is_logged_as_flask_limiter_logs_it(
    make_app: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_app(RATELIMIT_DEFAULT=["1/minute"], LOG_LEVEL="INFO").test_client()
    assert [client.get("/api/probe/items").status_code for _ in range(2)] == [200, 429]
    assert logged(capsys, "flask-limiter") == [
        "ratelimit 1 per 1 minute (127.0.0.1) exceeded at endpoint: probe.Items"
    ]


def test_an_unexpected_error_in_the_check_is_no_500(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """flask-limiter's own check counts the request instead, as it swallows its errors."""
    checks = record_calls(monkeypatch, Limiter, "_check_request_limit")
    app = make_app(RATELIMIT_DEFAULT=["5/minute"])
    failing = {"left": 1}
    original = LazyMemoryStorage.incr

    def incr(self: LazyMemoryStorage, key: str, expiry: float, amount: int = 1) -> int:
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("a bug")
        return original(self, key, expiry, amount)

    monkeypatch.setattr(LazyMemoryStorage, "incr", incr)
    answer = app.test_client().get("/api/probe/items")
    assert answer.status_code == 200
    assert answer.headers["X-RateLimit-Remaining"] == "4"
    assert len(checks) == 1
    assert logged(capsys, "flask-limiter") == [
        "Rate limit check failed; flask-limiter's own check counts it"
    ]


def test_a_route_with_limits_of_its_own_is_flask_limiters(make_app: AppFactory) -> None:
    app = make_app(RATELIMIT_DEFAULT=["5/minute"])
    [limiter] = app.extensions["limiter"]

    @limiter.limit("1/minute")
    def once() -> str:
        return "once"

    app.add_url_rule("/api/once", view_func=once)
    client = app.test_client()
    first, second = client.get("/api/once"), client.get("/api/once")
    assert (first.status_code, second.status_code) == (200, 429)
    assert first.headers["X-RateLimit-Limit"] == "1"  # its own limit's headers
    assert 0 < int(second.headers["Retry-After"]) <= 60


def test_limits_beyond_plain_ones_go_to_flask_limiters_own_check(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default limits per method, for one: each method of a route counts apart."""
    checks = record_calls(monkeypatch, Limiter, "_check_request_limit")
    app = make_app(RATELIMIT_DEFAULT=["1/minute"])
    [limiter] = app.extensions["limiter"]
    for group in limiter.limit_manager._default_limits:
        monkeypatch.setattr(group, "per_method", True)
    client = app.test_client()
    assert client.get("/api/probe/items").status_code == 200
    assert client.post("/api/probe/items", json={"name": "x"}).status_code != 429
    limited = client.get("/api/probe/items")
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert len(checks) == 3


def test_startup_fails_without_flask_limiters_hooks() -> None:
    limiter = Limiter(get_remote_address)  # never init_app'ed: no hook of its own
    with pytest.raises(RuntimeError, match="registered no"):
        RequestLimits(Flask(__name__), limiter, frozenset({"docs"}))


def test_limiting_can_be_disabled(make_app: AppFactory) -> None:
    client = make_app(RATELIMIT_DEFAULT=["1/minute"], RATELIMIT_ENABLED=False).test_client()
    assert [client.get("/api/probe/items").status_code for _ in range(3)] == [200, 200, 200]


def test_redis_storage_is_shared_between_apps(make_app: AppFactory) -> None:
    require_redis()
    # Two apps stand for two workers; a unique limit string gives this test its own counters.
    amount = 3 + uuid.uuid4().int % 1000
    limit = f"{amount}/hour"
    first: Flask = make_app(RATELIMIT_DEFAULT=[limit], RATELIMIT_STORAGE_URI=REDIS_URL)
    second: Flask = make_app(RATELIMIT_DEFAULT=[limit], RATELIMIT_STORAGE_URI=REDIS_URL)
    clients = [first.test_client(), second.test_client()]
    address = {"REMOTE_ADDR": f"127.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}
    statuses = [
        clients[i % 2].get("/api/probe/items", environ_base=address).status_code
        for i in range(amount + 2)
    ]
    assert statuses == [200] * amount + [429, 429]


def test_redis_clients_have_socket_timeouts(make_app: AppFactory) -> None:
    app = make_app(
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",  # never connected to here
        RATELIMIT_STORAGE_CONNECT_TIMEOUT=0.3,
        RATELIMIT_STORAGE_TIMEOUT=0.2,
    )
    [limiter] = app.extensions["limiter"]
    client = redis_client(limiter)
    assert client is not None
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (0.3, 0.2)


def test_refused_redis_falls_back_to_memory(make_app: AppFactory) -> None:
    """Pins flask-limiter's private fallback flag, which app.ratelimit reads."""
    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0", RATELIMIT_DEFAULT=["1/minute"])
    [limiter] = app.extensions["limiter"]
    assert not counting_in_memory(limiter)
    client = app.test_client()
    assert client.get("/api/probe/items").status_code == 200
    assert counting_in_memory(limiter)
    assert client.get("/api/probe/items").status_code == 429  # still limited, in memory


def test_production_warns_at_startup_when_limits_count_per_process(
    instance_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    production = {
        "INSTANCE_PATH": str(instance_path),
        "ENVIRONMENT": "production",
        "SECRET_KEY": "k3Y-" + "abcdefghijklmnopqrstuvwxyz0123456789",
        "TRUSTED_HOSTS": ["api.example.test"],
        "accounts": {"SIGNING_KEYS": {"k1": "s1gning-" + "abcdefghijklmnopqrstuvwxyz0123456789"}},
    }
    create_app(production)  # memory://: warned
    create_app({**production, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15"})
    create_app({**production, "RATELIMIT_ENABLED": False})
    create_app({**production, "ENVIRONMENT": "development"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warned = [line["message"] for line in lines if line["logger"] == "app.ratelimit"]
    assert warned == [PER_PROCESS_WARNING]


@pytest.mark.parametrize(
    ("uri", "redis_errors"),
    [
        ("memory://", False),
        ("redis://127.0.0.1:6379/0", True),
        ("rediss://127.0.0.1:6379/0", True),
        ("redis+sentinel://127.0.0.1:26379/primary", True),
    ],
)
def test_plugin_limits_fail_open_on_their_storages_errors(uri: str, redis_errors: bool) -> None:
    config = cast(HostConfig, SimpleNamespace(RATELIMIT_STORAGE_URI=uri))
    errors = storage_errors(config)
    assert OSError in errors
    assert (redis.RedisError in errors) is redis_errors


def test_limits_are_resolved_once_per_route_and_every_request_still_counts(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = record_calls(monkeypatch, LimitManager, "resolve_limits")  # (self, app, endpoint, ...)
    client = make_app(RATELIMIT_DEFAULT=["2/minute", "3/hour"]).test_client()
    items = [client.get("/api/probe/items") for _ in range(3)]
    assert [answer.status_code for answer in items] == [200, 200, 429]
    assert [answer.headers["X-RateLimit-Remaining"] for answer in items] == ["1", "0", "0"]
    # Another route counts apart (its answers are 404s on purpose: counted all the same).
    other = [client.get("/api/probe/status/404").status_code for _ in range(3)]
    assert other == [404, 404, 429]
    assert [call[2] for call in asked] == ["probe.Items", "probe.status"]
