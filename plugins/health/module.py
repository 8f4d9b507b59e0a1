"""Injector bindings of the health plugin."""

from __future__ import annotations

import injector

from plugins.health.service import HealthService
from powerstrip import HealthCheck, PluginRegistry


class HealthModule(injector.Module):
    """Provides :class:`HealthService` from the plugin registry and every registered check."""

    @injector.provider
    def health_service(self, registry: PluginRegistry, checks: list[HealthCheck]) -> HealthService:
        """Built per probe from what the host already knows (no I/O here)."""
        return HealthService(registry, checks)
