"""The health plugin's probes, through HTTP."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from app import create_app
from tests.conftest import AppFactory
from tests.plugin_fixtures import HELLO_VIEW, Installer, plugin_source

CHECKS = (
    HELLO_VIEW
    + """
import injector
from powerstrip import HealthCheck

STATE = {{"cache": True}}

def cache_probe():
    if not STATE["cache"]:
        raise ConnectionError("cache at 10.1.2.3:6379 refused the connection")

class ChecksModule(injector.Module):
    @injector.multiprovider
    def checks(self) -> list[HealthCheck]:
        return [HealthCheck("cache", cache_probe), HealthCheck("queue", lambda: None)]
"""
)


def test_live(client: FlaskClient) -> None:
    response = client.get("/api/v1/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_reports_plugins(client: FlaskClient) -> None:
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["plugins"]["health"] == {"state": "enabled", "reason": None}
    assert set(body["checks"]) == {"database"}  # no Redis configured, so no Redis check
    assert body["checks"]["database"]["status"] == "up"


def test_probes_are_not_rate_limited(make_app: AppFactory) -> None:
    client = make_app(RATELIMIT_DEFAULT=["1/minute"]).test_client()
    for _ in range(3):
        assert client.get("/api/v1/health/live").status_code == 200
        assert client.get("/api/v1/health/ready").status_code == 200


def test_ready_runs_every_registered_check(installer: Installer, instance_path: Path) -> None:
    package = installer.install("checks", plugin_source("checks", CHECKS, modules="[ChecksModule]"))
    app = create_app({"ENVIRONMENT": "testing", "INSTANCE_PATH": str(instance_path)})
    client = app.test_client()
    body = client.get("/api/v1/health/ready").get_json()
    assert body["status"] == "ready"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "up",
        "cache": "up",
        "queue": "up",
    }

    module = __import__(package)
    module.STATE["cache"] = False  # the dependency goes down
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 503
    down = response.get_json()["checks"]["cache"]
    assert down["status"] == "down"
    assert down["error"] == "ConnectionError"
    assert "10.1.2.3" not in response.get_data(as_text=True)  # no internals to anonymous callers

    module.STATE["cache"] = True  # and recovers, without a restart
    assert client.get("/api/v1/health/ready").status_code == 200


def test_probes_document_no_429(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    for path in ("/api/v1/health/live", "/api/v1/health/ready"):
        assert "429" not in spec["paths"][path]["get"]["responses"]
    assert "503" in spec["paths"]["/api/v1/health/ready"]["get"]["responses"]


def test_an_optional_check_down_answers_degraded_with_200(
    installer: Installer, instance_path: Path
) -> None:
    package = installer.install("checks", plugin_source("checks", CHECKS, modules="[ChecksModule]"))
    app = create_app(
        {
            "ENVIRONMENT": "testing",
            "INSTANCE_PATH": str(instance_path),
            "health": {"OPTIONAL_CHECKS": ["cache"], "CHECK_TIMEOUT": 1.5},
        }
    )
    module = __import__(package)
    module.STATE["cache"] = False
    response = app.test_client().get("/api/v1/health/ready")
    assert response.status_code == 200  # the instance serves without it: keep it in rotation
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "up"


def test_ready_documents_its_statuses(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    ready = spec["components"]["schemas"]["Ready"]["properties"]["status"]
    assert ready["enum"] == ["ready", "degraded", "unavailable"]
