"""``flask plugins list|check|config`` and the ``powerstrip`` script, with broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.plugins_cli import plugins
from tests.app.test_loader import SETTINGS
from tests.conftest import SUITE_PLUGINS
from tests.plugin_fixtures import Installer, plugin_source

ROOT = Path(__file__).resolve().parents[2]


def summary() -> str:
    """The suite's plugins are enabled; any other plugin installed here is disabled."""
    others = len(metadata.entry_points(group="powerstrip.plugins")) - len(SUITE_PLUGINS)
    return f"{len(SUITE_PLUGINS)} enabled, {others} disabled"


@pytest.fixture
def env(instance_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"POWERSTRIP_ENVIRONMENT": "testing", "POWERSTRIP_INSTANCE_PATH": str(instance_path)}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(plugins, list(args))


def test_list_shows_every_state_and_reason(
    installer: Installer, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    installer.install("greeter")
    installer.install("broken", "raise RuntimeError('boom')\n")
    installer.install("quiet")
    monkeypatch.setenv("POWERSTRIP_PLUGINS_DISABLED", '["quiet"]')
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "DISTRIBUTION", "STATE", "ROUTES", "REASON"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert by_name["greeter"].split()[1:5] == [
        "1.2.3",
        by_name["greeter"].split()[2],
        "enabled",
        "1",
    ]
    assert "failed" in by_name["broken"]
    assert "import failed: RuntimeError: boom" in by_name["broken"]
    assert "disabled" in by_name["quiet"]
    assert "listed in PLUGINS_DISABLED" in by_name["quiet"]
    assert by_name["health"].split()[1:5] == ["0.1.0", "powerstrip", "enabled", "2"]


def test_list_json(installer: Installer, env: dict[str, str]) -> None:
    installer.install("broken", "raise RuntimeError('boom')\n")
    rows = {row["name"]: row for row in json.loads(invoke("list", "--json").output)}
    assert rows["broken"]["state"] == "failed"
    assert rows["health"]["routes"] == "2"


def test_check_fails_listing_problems(installer: Installer, env: dict[str, str]) -> None:
    expected = summary()  # the two plugins installed here fail: neither enabled nor disabled
    installer.install("broken", "raise RuntimeError('boom')\n")
    installer.install("orphan", requires=("ghost",))
    result = invoke("check")
    assert result.exit_code == 1
    assert "plugin 'broken': import failed: RuntimeError: boom" in result.output
    assert "plugin 'orphan': missing dependency: requires 'ghost'" in result.output
    assert f"2 plugin(s) failed; {expected}" in result.output


def test_check_passes(env: dict[str, str]) -> None:
    result = invoke("check")
    assert result.exit_code == 0, result.output
    assert result.output == f"all plugins OK: {summary()}\n"


def test_config_redacts_secrets(
    installer: Installer, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    installer.install(
        "greeter", plugin_source("greeter", SETTINGS, settings="GreeterSettingsSchema")
    )
    monkeypatch.setenv("POWERSTRIP_GREETER__API_TOKEN", "s3cret-token")
    result = invoke("config", "greeter")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "GREETING": "Hello",
        "TIMES": 1,
        "API_TOKEN": "**redacted**",
    }
    assert "s3cret-token" not in result.output
    assert json.loads(invoke("config", "health").output) == {}


def test_config_of_unknown_or_failed_plugin(installer: Installer, env: dict[str, str]) -> None:
    installer.install("broken", "raise RuntimeError('boom')\n")
    assert "plugin 'ghost' is not installed" in invoke("config", "ghost").output
    result = invoke("config", "broken")
    assert result.exit_code == 1
    assert "plugin 'broken' is failed: import failed" in result.output


def test_bad_host_config_is_one_line(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERSTRIP_MAX_CONTENT_LENGTH", "lots")
    result = invoke("list")
    assert result.exit_code == 1
    assert result.output == "Error: configuration key MAX_CONTENT_LENGTH: Not a valid integer.\n"


@pytest.mark.parametrize("command", [["flask", "--app", "wsgi"], ["powerstrip"]])
def test_cli_survives_a_broken_plugin_in_strict_mode(
    installer: Installer, env: dict[str, str], command: list[str]
) -> None:
    installer.install("broken", "raise RuntimeError('boom')\n")
    executable = str(Path(sys.executable).parent / command[0])
    result = subprocess.run(
        [executable, *command[1:], "plugins", "check"],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(installer.root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "plugin 'broken': import failed: RuntimeError: boom" in result.stderr
