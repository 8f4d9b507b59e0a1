"""Readiness verdicts and the bounded, side-by-side running of checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from plugins.health.service import CheckRunner, HealthService
from powerstrip import HealthCheck, PluginInfo

TIMEOUT = 0.3


class Registry:
    """A fake :class:`~powerstrip.PluginRegistry`."""

    def __init__(self, *infos: PluginInfo) -> None:
        self._infos = infos

    def plugins(self) -> Sequence[PluginInfo]:
        return self._infos

    def enabled(self) -> Sequence[PluginInfo]:
        return [info for info in self._infos if info.state == "enabled"]


HEALTHY = Registry(PluginInfo("health", "0.1.0", "enabled"))


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test: hanging probes return, their threads end."""
    event = threading.Event()
    yield event
    event.set()


def hanging(release: threading.Event, calls: list[float]) -> Callable[[], None]:
    def probe() -> None:
        calls.append(time.perf_counter())
        release.wait(10)

    return probe


def refused() -> None:
    raise ConnectionError("refused")


def readiness(checks: list[HealthCheck], optional: frozenset[str] = frozenset()) -> HealthService:
    return HealthService(HEALTHY, checks, CheckRunner(TIMEOUT), optional)


def test_ready_when_every_check_is_up() -> None:
    verdict = readiness([HealthCheck("database", lambda: None)]).readiness()
    assert (verdict.status, verdict.serving) == ("ready", True)
    assert verdict.checks["database"]["status"] == "up"


def test_an_optional_check_down_degrades_a_required_one_makes_unavailable() -> None:
    checks = [HealthCheck("database", lambda: None), HealthCheck("redis", refused)]
    degraded = readiness(checks, frozenset({"redis"})).readiness()
    assert (degraded.status, degraded.serving) == ("degraded", True)
    assert degraded.checks["redis"] == {
        "status": "degraded",
        "error": "ConnectionError",
        "duration_ms": degraded.checks["redis"]["duration_ms"],
    }
    unavailable = readiness(checks).readiness()
    assert (unavailable.status, unavailable.serving) == ("unavailable", False)
    assert unavailable.checks["redis"]["status"] == "down"


def test_a_failed_plugin_makes_unavailable() -> None:
    registry = Registry(PluginInfo("broken", None, "failed", "ImportError"))
    verdict = HealthService(registry, [], CheckRunner(TIMEOUT)).readiness()
    assert verdict.status == "unavailable"


def test_checks_run_side_by_side_within_the_timeout(release: threading.Event) -> None:
    calls: list[float] = []
    checks = [HealthCheck(f"slow{i}", hanging(release, calls)) for i in range(3)]
    started = time.perf_counter()
    verdict = readiness([*checks, HealthCheck("fast", lambda: None)]).readiness()
    elapsed = time.perf_counter() - started
    assert TIMEOUT <= elapsed < TIMEOUT + 0.5  # one timeout for all, not one each
    assert len(calls) == 3
    assert verdict.status == "unavailable"
    assert [verdict.checks[f"slow{i}"]["error"] for i in range(3)] == ["TimeoutError"] * 3
    assert verdict.checks["fast"]["status"] == "up"
    assert list(verdict.checks) == ["slow0", "slow1", "slow2", "fast"]  # the checks' order


def test_a_hanging_check_is_not_started_again_until_it_ends(release: threading.Event) -> None:
    calls: list[float] = []
    runner = CheckRunner(TIMEOUT)
    service = HealthService(HEALTHY, [HealthCheck("database", hanging(release, calls))], runner)
    for _ in range(3):
        assert service.readiness().checks["database"]["error"] == "TimeoutError"
    assert len(calls) == 1  # one thread for the hanging dependency, not one per probe
    release.set()
    deadline = time.monotonic() + 5
    while len(calls) == 1:  # it ended: the next probe runs it again
        assert time.monotonic() < deadline
        service.readiness()
        time.sleep(0.05)
    assert len(calls) == 2
