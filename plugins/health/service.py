"""Readiness: every plugin's state and every registered dependency check, in bounded time.

The instance is ``ready`` when every plugin loaded and every check is up; ``degraded`` (still
serving: 200) when only optional checks are down, such as the rate-limit Redis whose counts
fall back to memory; ``unavailable`` (503: take it out of the load balancer) when a plugin
failed or a check it cannot serve without (the database) is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from powerstrip import HealthCheck, PluginRegistry

log = logging.getLogger(__name__)

ReadinessStatus = Literal["ready", "degraded", "unavailable"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """The readiness verdict and the detail behind it."""

    status: ReadinessStatus
    plugins: dict[str, dict[str, str | None]]
    checks: dict[str, dict[str, Any]]

    @property
    def serving(self) -> bool:
        """Whether the instance should receive traffic (ready or degraded)."""
        return self.status != "unavailable"


class _Run:
    """One run of a check in a thread of its own: its outcome once it has ended."""

    def __init__(self, check: HealthCheck) -> None:
        self.check = check
        self.started = time.perf_counter()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._probe, name=f"health-check-{check.name}", daemon=True
        )

    def _probe(self) -> None:
        try:
            self.check.probe()
        except Exception as exc:  # noqa: BLE001 - the dependency's failure: reported (and logged)
            self.error = exc


class CheckRunner:
    """Runs every check side by side and waits at most ``timeout`` seconds for them all.

    A check still running then is reported down (``TimeoutError``) and left to finish in its
    daemon thread; until it has, later probes report it down at once rather than start it
    again, so a hanging dependency costs one thread per check, not one per probe.
    """

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._hanging: dict[str, _Run] = {}

    def run(self, checks: Sequence[HealthCheck]) -> dict[str, dict[str, Any]]:
        """Each check's ``{"status": "up" | "down", "error", "duration_ms"}`` by name."""
        runs: dict[str, _Run] = {}  # in the checks' order
        started: list[_Run] = []
        with self._lock:
            for check in checks:
                previous = self._hanging.get(check.name)
                if previous is not None and previous.thread.is_alive():
                    runs[check.name] = previous
                    continue
                runs[check.name] = run = _Run(check)
                run.thread.start()
                started.append(run)
        deadline = time.perf_counter() + self._timeout
        for run in started:
            run.thread.join(max(0.0, deadline - time.perf_counter()))
        with self._lock:
            for name, run in runs.items():
                if run.thread.is_alive():
                    self._hanging[name] = run
                else:
                    self._hanging.pop(name, None)
        return {name: self._result(run) for name, run in runs.items()}

    @staticmethod
    def _result(run: _Run) -> dict[str, Any]:
        duration_ms = round((time.perf_counter() - run.started) * 1000, 3)
        if run.thread.is_alive():
            log.warning(
                "health check timed out", extra={"check": run.check.name, "ms": duration_ms}
            )
            return {"status": "down", "error": "TimeoutError", "duration_ms": duration_ms}
        if run.error is not None:
            # The cause goes to the log; the anonymous probe answer names only its kind.
            log.warning("health check failed", exc_info=run.error, extra={"check": run.check.name})
            return {"status": "down", "error": type(run.error).__name__, "duration_ms": duration_ms}
        return {"status": "up", "error": None, "duration_ms": duration_ms}


class HealthService:
    """Answers the probes from the plugin registry and the plugins' checks."""

    def __init__(
        self,
        registry: PluginRegistry,
        checks: Sequence[HealthCheck],
        runner: CheckRunner,
        optional: frozenset[str] = frozenset(),
    ) -> None:
        self._registry = registry
        self._checks = checks
        self._runner = runner
        self._optional = optional

    def readiness(self) -> Readiness:
        """Unavailable if a plugin failed or a required check is down; degraded if only an
        optional check is down (it reads ``degraded``); ready otherwise."""
        installed = self._registry.plugins()
        plugins = {info.name: {"state": info.state, "reason": info.reason} for info in installed}
        checks = self._runner.run(self._checks)
        for name, result in checks.items():
            if result["status"] == "down" and name in self._optional:
                result["status"] = "degraded"
        statuses = {result["status"] for result in checks.values()}
        status: ReadinessStatus = "ready"
        if any(info.state == "failed" for info in installed) or "down" in statuses:
            status = "unavailable"
        elif "degraded" in statuses:
            status = "degraded"
        return Readiness(status=status, plugins=plugins, checks=checks)
