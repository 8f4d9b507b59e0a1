"""Readiness: every plugin's state and every registered dependency check."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from powerstrip import HealthCheck, PluginRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The readiness verdict and the detail behind it."""

    ready: bool
    plugins: dict[str, dict[str, str | None]]
    checks: dict[str, dict[str, Any]]


class HealthService:
    """Answers the probes from the plugin registry and the plugins' checks."""

    def __init__(self, registry: PluginRegistry, checks: Sequence[HealthCheck]) -> None:
        self._registry = registry
        self._checks = checks

    def readiness(self) -> Readiness:
        """Ready unless a plugin failed to load or a dependency check fails."""
        installed = self._registry.plugins()
        plugins = {info.name: {"state": info.state, "reason": info.reason} for info in installed}
        checks = {check.name: self._run(check) for check in self._checks}
        ready = all(info.state != "failed" for info in installed) and all(
            result["status"] == "up" for result in checks.values()
        )
        return Readiness(ready=ready, plugins=plugins, checks=checks)

    @staticmethod
    def _run(check: HealthCheck) -> dict[str, Any]:
        started = time.perf_counter()
        error: str | None = None
        try:
            check.probe()
        except Exception as exc:
            # The cause goes to the log; the anonymous probe answer names only its kind.
            log.warning("health check failed", exc_info=exc, extra={"check": check.name})
            error = type(exc).__name__
        status = "up" if error is None else "down"
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        return {"status": status, "error": error, "duration_ms": duration_ms}
