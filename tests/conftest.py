"""Shared fixtures: an isolated app per test, built only through ``create_app``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.db import DATABASE, Database
from tests.plugin_fixtures import Installer
from tests.services import temporary_postgres_database
from tests.support import register_probe

# The plugin author's kit (its fixtures, for tests/plugins/test_conformance.py): registered
# here, after coverage started, as pyproject's `-p no:powerstrip` keeps its entry point out.
pytest_plugins = ["powerstrip.testing"]

AppFactory = Callable[..., Flask]
# Read once, before the autouse fixture below clears POWERSTRIP_* for every test.
TEST_DATABASE = os.environ.get("POWERSTRIP_TEST_DATABASE", "sqlite")
# The plugins this suite tests: this project's own and the example plugin (when installed).
# Any other plugin installed in the environment stays disabled, so it cannot change them.
SUITE_DISTRIBUTIONS = {"powerstrip", "powerstrip-hello"}
SUITE_PLUGINS = sorted(
    entry_point.name
    for entry_point in metadata.entry_points(group="powerstrip.plugins")
    if entry_point.dist is not None and entry_point.dist.name in SUITE_DISTRIBUTIONS
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No POWERSTRIP_* variable of the developer's shell leaks into a test; only the suite's
    plugins (and those a test installs with ``installer``) are enabled."""
    for name in list(os.environ):
        if name.startswith("POWERSTRIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("POWERSTRIP_PLUGINS", json.dumps(SUITE_PLUGINS))


@pytest.fixture
def instance_path(tmp_path: Path, _isolated_environment: None) -> Path:
    # Depends on the clean environment explicitly: pytest-flask's own autouse fixtures may
    # build the app before this conftest's autouse fixtures run.
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def database_url(instance_path: Path) -> Iterator[str]:
    """The suite's database: a SQLite file per test, or with POWERSTRIP_TEST_DATABASE=postgresql
    (``make test-pg``) a fresh PostgreSQL database per test."""
    if TEST_DATABASE == "postgresql":
        with temporary_postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{instance_path / 'test.db'}"


@pytest.fixture
def make_app(instance_path: Path, database_url: str) -> Iterator[AppFactory]:
    """Build an app with the probe blueprint; keyword arguments override configuration.

    Each app's connection pool is closed when the test ends.
    """
    built: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        config = {
            "ENVIRONMENT": "testing",
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": database_url,
            **overrides,
        }
        app = register_probe(create_app(config))
        built.append(app)
        return app

    yield factory
    for app in built:
        app.extensions["powerstrip.database"].engine.dispose()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def installer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installer:
    """Installs fixture plugin distributions into a temporary path on ``sys.path``."""
    root = tmp_path / "site"
    root.mkdir()
    return Installer(root, monkeypatch, SUITE_PLUGINS)


def upgrade(app: Flask) -> None:
    """Run the real ``flask db upgrade`` for ``app``'s database."""
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def migrated_app(app: Flask) -> Flask:
    """``app`` with every enabled plugin's migrations applied."""
    upgrade(app)
    return app


@pytest.fixture
def rollback_app(make_app: AppFactory) -> Iterator[Flask]:
    """A migrated app whose every session joins one transaction rolled back after the test."""
    app = make_app()
    upgrade(app)
    database: Database = app.extensions[DATABASE]
    with database.engine.connect() as connection:
        transaction = connection.begin()
        database.use_connection(connection)
        yield app
        transaction.rollback()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the timings tests recorded (``record_property("..._seconds", ...)``)."""
    for report in terminalreporter.getreports("passed"):
        timings = [(k, v) for k, v in report.user_properties if k.endswith("_seconds")]
        if timings:
            shown = ", ".join(f"{key.removesuffix('_seconds')} {value}s" for key, value in timings)
            terminalreporter.write_line(f"timings of {report.nodeid}: {shown}")
