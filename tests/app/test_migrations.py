"""Migrations: upgrade from empty, downgrade to base, models and migrations agree, new
revisions per plugin, on SQLite and (as ``make test-pg`` or under CI) PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import inspect

from app import PluginError, create_app
from app.migrations import alembic_config
from app.plugins_cli import plugins
from tests.conftest import AppFactory
from tests.plugin_fixtures import Installer, plugin_source
from tests.services import temporary_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both databases in every run: migrations must work on each."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        with temporary_postgres_database() as url:
            yield url


def hello_head(app: Flask) -> str:
    """The revision id at the head of the hello plugin's branch."""
    with app.app_context():
        script = ScriptDirectory.from_config(alembic_config(app))
        [head] = script.get_revisions("hello@head")
    assert head is not None
    return str(head.revision)


def db(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def tables(app: Flask) -> set[str]:
    engine = app.extensions["powerstrip.database"].engine
    return set(inspect(engine).get_table_names())


def test_upgrade_from_empty_check_and_downgrade_to_base(
    make_app: AppFactory, any_database: str
) -> None:
    app = make_app(DATABASE_URL=any_database)
    assert tables(app) == set()
    result = db(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert {"hello_greetings", "alembic_version"} <= tables(app)

    checked = db(app, "check")  # models and migrations agree for every enabled plugin
    assert checked.exit_code == 0, checked.output

    assert hello_head(app) is not None

    down = db(app, "downgrade", "base")
    assert down.exit_code == 0, down.output
    assert "hello_greetings" not in tables(app)
    again = db(app, "upgrade")
    assert again.exit_code == 0, again.output
    assert "hello_greetings" in tables(app)


MODELS = """
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column
from powerstrip import Model

class Note(Model):
    __tablename__ = "{name}_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))
    greeting_id: Mapped[int | None] = mapped_column(ForeignKey("hello_greetings.id"))
"""


def notes_plugin(installer: Installer, tmp_path: Path) -> tuple[str, Path]:
    """A plugin requiring hello, with a foreign key to hello's table and its own versions."""
    name = f"notes{uuid.uuid4().hex[:6]}"
    versions = tmp_path / f"{name}_versions"
    versions.mkdir()
    source = plugin_source(
        name,
        MODELS,
        requires="('hello',)",
        migrations=f"__import__('pathlib').Path({str(versions)!r})",
    )
    installer.install(name, source)
    return name, versions


def test_makemigrations_starts_a_plugin_branch_that_depends_on_its_requirements(
    installer: Installer,
    tmp_path: Path,
    instance_path: Path,
    any_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, versions = notes_plugin(installer, tmp_path)
    monkeypatch.setenv("POWERSTRIP_ENVIRONMENT", "testing")
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(instance_path))
    monkeypatch.setenv("POWERSTRIP_DATABASE_URL", any_database)
    app = create_app()
    assert db(app, "upgrade").exit_code == 0  # autogenerate compares with an up-to-date DB

    result = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "create notes"])
    assert result.exit_code == 0, result.output
    [revision] = versions.glob("*_create_notes.py")
    text = revision.read_text()
    assert f'branch_labels: str | Sequence[str] | None = ("{name}",)' in text
    # depends on hello's head (resolved to its revision id): hello's table exists first
    assert f'depends_on: str | Sequence[str] | None = "{hello_head(app)}"' in text
    assert "op.create_table(" in text
    assert f'"{name}_notes"' in text
    assert "hello_greetings" not in text.split("create_table")[0]  # only this plugin's tables

    assert db(app, "upgrade").exit_code == 0
    assert f"{name}_notes" in tables(app)
    checked = db(app, "check")
    assert checked.exit_code == 0, checked.output

    # A second revision continues the branch instead of starting another.
    again = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "nothing new"])
    assert again.exit_code == 0, again.output
    [second] = versions.glob("*_nothing_new.py")
    assert "branch_labels: str | Sequence[str] | None = None" in second.read_text()

    assert db(app, "downgrade", "base").exit_code == 0
    assert f"{name}_notes" not in tables(app)
    app.extensions["powerstrip.database"].engine.dispose()


def test_makemigrations_refuses_plugins_without_a_versions_directory(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERSTRIP_ENVIRONMENT", "testing")
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(instance_path))
    result = CliRunner().invoke(plugins, ["makemigrations", "health", "-m", "x"])
    assert result.exit_code == 1
    assert "plugin 'health' declares no migrations directory" in result.output
    missing = CliRunner().invoke(plugins, ["makemigrations", "ghost", "-m", "x"])
    assert "plugin 'ghost' is not enabled" in missing.output


def test_table_without_the_plugin_prefix_is_refused(
    installer: Installer, make_app: AppFactory
) -> None:
    name = f"bad{uuid.uuid4().hex[:6]}"
    body = MODELS.replace('"{name}_notes"', f'"loose_{name}"')
    installer.install(name, plugin_source(name, body))
    with pytest.raises(PluginError, match=rf"^plugin '{name}': table 'loose_{name}' must be named"):
        make_app()


def test_table_in_a_longer_plugins_namespace_is_refused(
    installer: Installer, make_app: AppFactory
) -> None:
    short = f"p{uuid.uuid4().hex[:6]}"
    longer = f"{short}_extra"
    body = MODELS.replace('"{name}_notes"', f'"{longer}_notes"')
    installer.install(short, plugin_source(short, body))
    installer.install(longer)
    with pytest.raises(PluginError, match=rf"collides with plugin '{longer}'"):
        make_app()


def test_offline_upgrade_prints_the_sql(make_app: AppFactory) -> None:
    app = make_app()
    result = db(app, "upgrade", "--sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE hello_greetings" in result.output
    assert tables(app) == set()  # nothing ran against the database
