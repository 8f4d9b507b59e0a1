"""Readiness: every plugin's state; not ready while any plugin failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app import PluginRecord


@dataclass(frozen=True, slots=True)
class Readiness:
    """The readiness verdict and the per-plugin detail behind it."""

    ready: bool
    plugins: dict[str, dict[str, str | None]]


class HealthService:
    """Answers the probes from the host's plugin records."""

    def __init__(self, records: Mapping[str, PluginRecord]) -> None:
        self._records = records

    def readiness(self) -> Readiness:
        """Ready unless a plugin failed to load (disabled plugins are fine)."""
        plugins = {
            name: {"state": record.state, "reason": record.reason}
            for name, record in sorted(self._records.items())
        }
        ready = all(record.state != "failed" for record in self._records.values())
        return Readiness(ready=ready, plugins=plugins)
