"""Injector bindings of the health plugin."""

from __future__ import annotations

import injector

from plugins.health.service import CheckRunner, HealthService
from plugins.health.settings import HealthSettings
from powerstrip import HealthCheck, PluginRegistry


class HealthModule(injector.Module):
    """Provides :class:`HealthService` from the plugin registry and every registered check."""

    @injector.singleton
    @injector.provider
    def check_runner(self, settings: HealthSettings) -> CheckRunner:
        """One per app: it remembers the checks still hanging from an earlier probe."""
        return CheckRunner(settings.CHECK_TIMEOUT)

    @injector.provider
    def health_service(
        self,
        registry: PluginRegistry,
        checks: list[HealthCheck],
        runner: CheckRunner,
        settings: HealthSettings,
    ) -> HealthService:
        """Built per probe from what the host already knows (no I/O here)."""
        return HealthService(registry, checks, runner, settings.OPTIONAL_CHECKS)
