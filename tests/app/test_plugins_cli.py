"""``flask plugins list|check|config`` and the ``powerstrip`` script, with broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
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


MODELS = """
from sqlalchemy.orm import Mapped, mapped_column
from powerstrip import Model

class Note(Model):
    __tablename__ = "{name}_notes"
    id: Mapped[int] = mapped_column(primary_key=True)

class Tag(Model):
    __tablename__ = "{name}_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = ("{name}",)
depends_on = None

def upgrade():
    op.create_table("{name}_notes", sa.Column("id", sa.Integer(), primary_key=True))

def downgrade():
    op.drop_table("{name}_notes")
"""


def models_plugin(installer: Installer, tmp_path: Path, *, revision: str | None = None) -> str:
    """A plugin with two tables; with ``revision`` (an id), a versions directory whose one
    revision creates one table (``loop`` makes the revision revise itself)."""
    name = f"m{uuid.uuid4().hex[:8]}"
    fields = {}
    if revision is not None:
        versions = tmp_path / f"{name}_versions"
        versions.mkdir()
        down = revision if revision == "loop" else None
        body = REVISION.format(revision=revision, down=down, name=name)
        (versions / f"{revision}_create_notes.py").write_text(textwrap.dedent(body))
        fields["migrations"] = f"__import__('pathlib').Path({str(versions)!r})"
    installer.install(name, plugin_source(name, MODELS, **fields))
    return name


def test_check_reports_models_without_a_migration(
    installer: Installer, env: dict[str, str], tmp_path: Path
) -> None:
    enabled, disabled = summary().split(", ")
    unmigrated = models_plugin(installer, tmp_path)
    partial = models_plugin(installer, tmp_path, revision=uuid.uuid4().hex[:12])
    result = invoke("check")
    assert result.exit_code == 1
    *problems, error = result.output.splitlines()
    make = 'makemigrations {} -m "...")'
    assert sorted(problems) == sorted(
        [
            f"plugin {unmigrated!r}: models without a migration: {unmigrated}_notes,"
            f" {unmigrated}_tags (declare Plugin.migrations, then run: powerstrip plugins"
            f" {make.format(unmigrated)}",
            f"plugin {partial!r}: models without a migration: {partial}_tags"
            f" (run: powerstrip plugins {make.format(partial)}",
        ]
    )
    assert (
        error == f"Error: 2 migration problem(s); {int(enabled.split()[0]) + 2} enabled, {disabled}"
    )


def test_check_reports_a_broken_revision_graph(
    installer: Installer, env: dict[str, str], tmp_path: Path
) -> None:
    models_plugin(installer, tmp_path, revision="loop")  # a revision that revises itself
    result = invoke("check")
    assert result.exit_code == 1
    [problem, error] = result.output.splitlines()
    assert problem.startswith("migrations cannot be read: ")
    assert "loop" in problem
    assert error.startswith("Error: 1 migration problem(s); ")


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
    assert json.loads(invoke("config", "health").output) == {
        "CHECK_TIMEOUT": 2.0,
        "OPTIONAL_CHECKS": ["redis"],
    }


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
