"""Injector bindings of the health plugin."""

from __future__ import annotations

import injector
from flask import Flask

from app import HealthCheck
from plugins.health.service import HealthService


class HealthModule(injector.Module):
    """Provides :class:`HealthService` from the plugin records and every registered check."""

    @injector.provider
    def health_service(self, app: Flask, checks: list[HealthCheck]) -> HealthService:
        """Built per probe: the records always describe every plugin."""
        return HealthService(app.extensions["powerstrip.plugins"], checks)
