"""Liveness and readiness probes: ``/api/v1/health/live`` and ``/api/v1/health/ready``."""

from __future__ import annotations

from plugins.health.module import HealthModule
from plugins.health.views import blueprint
from powerstrip import Plugin

plugin = Plugin(
    name="health",
    version="0.1.0",
    description="Liveness and readiness probes for load balancers and orchestrators.",
    blueprints=[blueprint],
    modules=[HealthModule],
    rate_limit_exempt=True,
)
