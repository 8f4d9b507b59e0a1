"""examples/hello-plugin, installed by ``make test`` the way a user installs a plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from flask import Flask

from tests.conftest import AppFactory

DISTRIBUTION = "powerstrip-hello"


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{DISTRIBUTION} is not installed: `make test` installs examples/hello-plugin")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    # Installed as a user would (a built wheel in site-packages), not an editable checkout.
    assert not direct_url.get("dir_info", {}).get("editable", False)


def test_discovered_from_its_own_distribution(app: Flask) -> None:
    record = app.extensions["powerstrip.plugins"]["hello"]
    assert (record.state, record.distribution, record.version) == ("enabled", DISTRIBUTION, "0.1.0")
    assert record.routes == 4


def test_served_and_validated(migrated_app: Flask) -> None:
    client = migrated_app.test_client()
    greeting = client.get("/api/v1/hello/greetings/Ada").get_json()
    assert greeting["message"] == "Hello, Ada!"
    assert greeting["at"].endswith("+00:00")
    created = client.post("/api/v1/hello/greetings", json={"name": "Bob"})
    assert created.status_code == 201
    assert created.get_json()["message"] == "Hello, Bob!"
    assert created.get_json()["id"] == 1
    listed = client.get("/api/v1/hello/greetings").get_json()
    assert [(row["id"], row["name"]) for row in listed] == [(1, "Bob")]
    client.post("/api/v1/hello/greetings", json={"name": "Cy"})
    first = client.get("/api/v1/hello/greetings?cursor=&page_size=1")  # keyset, newest first
    assert [row["name"] for row in first.get_json()] == ["Cy"]
    cursor = json.loads(first.headers["X-Pagination"])["next_cursor"]
    second = client.get(f"/api/v1/hello/greetings?cursor={cursor}&page_size=1")
    assert [row["name"] for row in second.get_json()] == ["Bob"]
    assert json.loads(second.headers["X-Pagination"])["next_cursor"] is None
    assert client.get("/api/v1/hello/greetings/by-id/1").get_json()["name"] == "Bob"
    missing = client.get("/api/v1/hello/greetings/by-id/3")
    assert (missing.status_code, missing.get_json()["detail"]) == (404, "No such greeting.")
    invalid = client.post("/api/v1/hello/greetings", json={})
    assert invalid.status_code == 422
    assert invalid.get_json()["errors"] == {"name": ["Missing data for required field."]}
    too_long = client.get("/api/v1/hello/greetings/" + "x" * 51)
    assert too_long.status_code == 422
    assert too_long.mimetype == "application/problem+json"


def test_documented_in_openapi(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/api/openapi.json").get_json()
    get = spec["paths"]["/api/v1/hello/greetings/{name}"]["get"]
    post = spec["paths"]["/api/v1/hello/greetings"]["post"]
    assert get["tags"] == post["tags"] == ["hello"]
    assert get["operationId"] == "hello_greeting_get"
    assert post["operationId"] == "hello_create_greeting_post"
    assert {
        "name": "hello",
        "description": "Greets people: an example third-party plugin.",
    } in spec["tags"]
    assert "Greeting" in spec["components"]["schemas"]
    by_id = spec["paths"]["/api/v1/hello/greetings/by-id/{greeting_id}"]["get"]
    assert by_id["responses"]["404"] == {"$ref": "#/components/responses/NOT_FOUND"}


def test_configurable_through_the_environment(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERSTRIP_HELLO__GREETING", "Hi")
    monkeypatch.setenv("POWERSTRIP_HELLO__PUNCTUATION", ".")
    client = make_app().test_client()
    assert client.get("/api/v1/hello/greetings/Ada").get_json()["message"] == "Hi, Ada."


def test_invalid_setting_names_the_plugin(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import PluginError  # noqa: PLC0415

    monkeypatch.setenv("POWERSTRIP_HELLO__PUNCTUATION", "~")
    with pytest.raises(PluginError, match=r"^plugin 'hello': invalid settings: PUNCTUATION"):
        make_app()


def test_cli_command_runs_in_process(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["hello", "greet", "Ada"])
    assert result.exit_code == 0, result.output
    assert result.output == "Hello, Ada!\n"


def test_cli_command_runs_from_the_console_script(instance_path: Path) -> None:
    script = Path(sys.executable).parent / "powerstrip"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERSTRIP_")}
    env |= {
        "POWERSTRIP_ENVIRONMENT": "development",
        "POWERSTRIP_INSTANCE_PATH": str(instance_path),
        "POWERSTRIP_HELLO__GREETING": "Howdy",
        "POWERSTRIP_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [str(script), "hello", "greet", "Ada"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Howdy, Ada!\n"
