"""Liveness and readiness probes: ``/api/v1/health/live`` and ``/api/v1/health/ready``.

Settings: ``[health]`` / ``POWERSTRIP_HEALTH__<KEY>`` (plugins/health/settings.py).
"""

from __future__ import annotations

from plugins.health.module import HealthModule
from plugins.health.settings import HealthSettingsSchema
from plugins.health.views import blueprint
from powerstrip import Plugin

plugin = Plugin(
    name="health",
    version="0.1.0",
    description="Liveness and readiness probes for load balancers and orchestrators.",
    blueprints=[blueprint],
    modules=[HealthModule],
    settings=HealthSettingsSchema,
    rate_limit_exempt=True,
)
