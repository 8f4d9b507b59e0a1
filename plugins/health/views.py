"""HTTP views of the health plugin."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from plugins.health.schemas import LiveSchema, ReadySchema
from plugins.health.service import HealthService

blueprint = Blueprint("health", __name__, description="Liveness and readiness probes")


@blueprint.route("/live")
@blueprint.response(200, LiveSchema)
def live() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@blueprint.route("/ready")
@blueprint.response(
    200, ReadySchema, description="Ready, or degraded: serving without an optional dependency"
)
@blueprint.alt_response(
    503, schema=ReadySchema, description="Unavailable: a plugin or a required dependency is down"
)
def ready(service: HealthService) -> tuple[dict[str, Any], int]:
    """Every plugin loaded and every dependency answers, within the checks' timeout."""
    readiness = service.readiness()
    body = {"status": readiness.status, "plugins": readiness.plugins, "checks": readiness.checks}
    return body, 200 if readiness.serving else 503
