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
@blueprint.response(200, ReadySchema)
@blueprint.alt_response(503, schema=ReadySchema, description="A plugin or dependency is down")
def ready(service: HealthService) -> tuple[dict[str, Any], int]:
    """Every plugin loaded and every dependency answers."""
    readiness = service.readiness()
    body = {
        "status": "ready" if readiness.ready else "degraded",
        "plugins": readiness.plugins,
        "checks": readiness.checks,
    }
    return body, 200 if readiness.ready else 503
