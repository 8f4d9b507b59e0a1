"""Injector bindings of the health plugin."""

from __future__ import annotations

import injector
from flask import Flask

from plugins.health.service import HealthService


class HealthModule(injector.Module):
    """Provides :class:`HealthService` from the app's plugin records."""

    @injector.provider
    def health_service(self, app: Flask) -> HealthService:
        """The records are read when a probe runs, so they include every plugin."""
        return HealthService(app.extensions["powerstrip.plugins"])
