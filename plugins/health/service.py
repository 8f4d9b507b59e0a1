"""Readiness: every plugin's state and every registered dependency check."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app import HealthCheck, PluginRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The readiness verdict and the detail behind it."""

    ready: bool
    plugins: dict[str, dict[str, str | None]]
    checks: dict[str, dict[str, Any]]


class HealthService:
    """Answers the probes from the host's plugin records and the plugins' checks."""

    def __init__(self, records: Mapping[str, PluginRecord], checks: Sequence[HealthCheck]) -> None:
        self._records = records
        self._checks = checks

    def readiness(self) -> Readiness:
        """Ready unless a plugin failed to load or a dependency check fails."""
        plugins = {
            name: {"state": record.state, "reason": record.reason}
            for name, record in sorted(self._records.items())
        }
        checks = {check.name: self._run(check) for check in self._checks}
        ready = all(record.state != "failed" for record in self._records.values()) and all(
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
