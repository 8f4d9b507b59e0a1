"""app.counters: fixed-window counters in memory, expired lazily, without a thread."""

from __future__ import annotations

import threading

import pytest
from flask_limiter import Limiter
from flask_limiter import commands as limiter_commands
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app import counters
from app.counters import LazyMemoryStorage
from app.ratelimit import storage_uri
from tests.conftest import AppFactory
from tests.spies import record_calls


class Clock:
    """``time.time`` for app.counters, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(counters, "time", fake)
    return fake


def test_a_window_counts_until_its_end_then_restarts(clock: Clock) -> None:
    storage = LazyMemoryStorage()
    assert (storage.get("k"), storage.get_expiry("k")) == (0, clock.now)
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("k", 60, amount=2) == 5
    assert (storage.get("k"), storage.get_expiry("k")) == (5, clock.now + 60)
    clock.now += 59.5
    assert storage.get("k") == 5
    clock.now += 0.5  # the window's end
    assert (storage.get("k"), storage.get_expiry("k")) == (0, clock.now)
    assert storage.incr("k", 60) == 1
    assert storage.get_expiry("k") == clock.now + 60


def test_keys_count_apart_and_can_be_cleared(clock: Clock) -> None:
    storage = LazyMemoryStorage()
    storage.incr("a", 60)
    storage.incr("b", 60)
    storage.incr("b", 60)
    storage.clear("b")
    storage.clear("never-counted")
    assert (storage.get("a"), storage.get("b")) == (1, 0)
    assert storage.reset() == 1
    assert storage.get("a") == 0
    assert storage.check()


def test_expired_counters_are_dropped_on_a_later_hit(clock: Clock) -> None:
    storage = LazyMemoryStorage()
    storage.incr("short", 1)
    storage.incr("long", 3600)
    storage.incr("minute", 60)
    clock.now += 1
    assert storage.held == 3  # "short" has ended, nothing has hit since
    storage.incr("other", 60)  # any key's hit drops it
    assert storage.held == 3
    assert [storage.get(key) for key in ("short", "long", "minute", "other")] == [0, 1, 1, 1]
    clock.now += 60
    storage.incr("long", 3600)  # "minute" and "other" end; "long" runs on
    assert storage.held == 1
    assert storage.get("long") == 2


def test_a_restarted_window_outlives_its_old_ones_end(clock: Clock) -> None:
    storage = LazyMemoryStorage()
    storage.incr("k", 10)
    clock.now += 10
    assert storage.incr("k", 10) == 1  # a new window, ending 10 s from now
    clock.now += 5
    storage.incr("x", 10)  # the first window's entry goes; the running window stays
    assert (storage.get("k"), storage.get_expiry("k")) == (1, clock.now + 5)
    storage.clear("k")
    clock.now += 10
    storage.incr("x", 10)  # the cleared key's entry goes without touching anything else
    assert storage.held == 1


def test_flask_limiters_config_command_can_show_it(make_app: AppFactory) -> None:
    app = make_app(RATELIMIT_DEFAULT=["100/minute"])
    app.test_client().get("/api/probe/items")
    wide = {"COLUMNS": "400"}  # rich cuts its table to the terminal width
    result = app.test_cli_runner().invoke(limiter_commands.cli, ["config"], env=wide)
    assert result.exit_code == 0, result.output
    assert "LazyMemoryStorage" in result.output
    assert "1 counters in this process's memory" in result.output


def test_concurrent_hits_lose_no_count() -> None:
    storage = LazyMemoryStorage()
    threads, hits = 8, 500
    barrier = threading.Barrier(threads)
    seen: list[list[int]] = [[] for _ in range(threads)]

    def hit(index: int) -> None:
        barrier.wait()
        seen[index].extend(storage.incr("shared", 60) for _ in range(hits))

    workers = [threading.Thread(target=hit, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert storage.get("shared") == threads * hits
    counts = sorted(count for each in seen for count in each)
    assert counts == list(range(1, threads * hits + 1))  # every hit saw its own count


def test_the_fixed_window_strategy_limits_on_it(clock: Clock) -> None:
    strategy = FixedWindowRateLimiter(storage_from_string(storage_uri("memory://")))
    limit = parse("2/minute")
    assert [strategy.hit(limit, "client") for _ in range(3)] == [True, True, False]
    assert strategy.get_window_stats(limit, "client") == (clock.now + 60, 0)
    clock.now += 60
    assert strategy.hit(limit, "client")


def test_memory_uris_count_here_and_others_pass_through() -> None:
    assert storage_uri("memory://") == "powerstrip-memory://"
    assert storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_app_limiter_counts_in_it_without_starting_threads(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(RATELIMIT_DEFAULT=["100/minute"])
    [limiter] = app.extensions["limiter"]
    assert isinstance(limiter, Limiter)
    assert isinstance(limiter.storage, LazyMemoryStorage)
    started = record_calls(monkeypatch, threading.Thread, "start")
    client = app.test_client()
    for _ in range(20):
        assert client.get("/api/probe/items").status_code == 200
    assert started == []
    assert limiter.storage.held == 1
