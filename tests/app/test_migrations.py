"""Migrations: upgrade from empty, downgrade to base, models and migrations agree, new
revisions per plugin, on SQLite and (as ``make test-pg`` or under CI) PostgreSQL."""

from __future__ import annotations

import importlib
import inspect as pyinspect
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from pkgutil import iter_modules
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import inspect
from sqlalchemy.types import TypeDecorator

import powerstrip
from app import PluginError, create_app
from app import migrations as host_migrations
from app.migrations import alembic_config, project_of, render_item, tables_created
from app.plugins_cli import plugins
from powerstrip.db import Model
from tests.conftest import AppFactory
from tests.plugin_fixtures import Installer, plugin_source
from tests.services import temporary_postgres_database

ROOT = Path(__file__).resolve().parents[2]


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

    # No model change: nothing written (Alembic would write an empty revision).
    unchanged = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "nothing new"])
    assert unchanged.exit_code == 1
    assert unchanged.output == (
        f"Error: no changes in plugin {name!r}'s models since its last revision: nothing written\n"
    )
    assert not list(versions.glob("*_nothing_new.py"))

    # A second revision continues the branch instead of starting another.
    notes = Model.metadata.tables[f"{name}_notes"]
    notes.append_column(sa.Column("pinned", sa.Boolean(), nullable=True))
    again = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "add pinned"])
    assert again.exit_code == 0, again.output
    [second] = versions.glob("*_add_pinned.py")
    assert "branch_labels: str | Sequence[str] | None = None" in second.read_text()
    assert db(app, "upgrade").exit_code == 0

    assert db(app, "downgrade", "base").exit_code == 0
    assert f"{name}_notes" not in tables(app)
    app.extensions["powerstrip.database"].engine.dispose()


SDK_TYPES = """
from datetime import datetime
from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from powerstrip import Model, UtcDateTime

class Stamp(Model):
    __tablename__ = "{name}_stamps"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(80), index=True)
    body: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
"""


def migrating_env(monkeypatch: pytest.MonkeyPatch, instance_path: Path, url: str) -> None:
    """What the ``powerstrip`` commands read: the testing environment on ``url``."""
    monkeypatch.setenv("POWERSTRIP_ENVIRONMENT", "testing")
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(instance_path))
    monkeypatch.setenv("POWERSTRIP_DATABASE_URL", url)


def test_makemigrations_renders_sdk_types_as_sqlalchemy_and_the_revision_runs(
    installer: Installer,
    tmp_path: Path,
    instance_path: Path,
    any_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"stamps{uuid.uuid4().hex[:6]}"
    versions = tmp_path / f"{name}_versions"
    versions.mkdir()
    source = plugin_source(
        name, SDK_TYPES, migrations=f"__import__('pathlib').Path({str(versions)!r})"
    )
    installer.install(name, source)
    migrating_env(monkeypatch, instance_path, any_database)
    app = create_app()
    assert db(app, "upgrade").exit_code == 0

    result = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "create stamps"])
    assert result.exit_code == 0, result.output
    [revision] = versions.glob("*_create_stamps.py")
    text = revision.read_text()
    assert "powerstrip" not in text  # SDK types render as plain SQLAlchemy: only sa is needed
    assert text.count("sa.DateTime(timezone=True)") == 2

    upgraded = db(app, "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert f"{name}_stamps" in tables(app)
    checked = db(app, "check")  # compare_type: the database matches the SDK types
    assert checked.exit_code == 0, checked.output
    down = db(app, "downgrade", "base")
    assert down.exit_code == 0, down.output
    assert f"{name}_stamps" not in tables(app)
    app.extensions["powerstrip.database"].engine.dispose()


def sdk_types() -> list[type[TypeDecorator[Any]]]:
    """Every column type the SDK defines (a TypeDecorator in the ``powerstrip`` package)."""
    modules = [
        importlib.import_module(f"powerstrip.{m.name}") for m in iter_modules(powerstrip.__path__)
    ]
    return [
        value
        for module in modules
        for value in vars(module).values()
        if pyinspect.isclass(value)
        and issubclass(value, TypeDecorator)
        and value.__module__ == module.__name__
    ]


def test_every_sdk_type_renders_as_its_sqlalchemy_implementation() -> None:
    assert powerstrip.UtcDateTime in sdk_types()
    context: Any = SimpleNamespace(opts={"sqlalchemy_module_prefix": "sa."})
    for sdk_type in sdk_types():
        instance = sdk_type()
        rendered = render_item("type", instance, context)
        assert isinstance(rendered, str)
        assert rendered.startswith("sa.")
        rebuilt = eval(rendered, {"sa": sa})  # noqa: S307 - what a revision runs, with only sa
        assert repr(rebuilt) == repr(instance.impl_instance)
    assert render_item("type", sa.DateTime(timezone=True), context) is False
    assert render_item("column", powerstrip.UtcDateTime(), context) is False


def test_makemigrations_refuses_a_plugin_installed_non_editable(
    installer: Installer,
    tmp_path: Path,
    instance_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = tmp_path / "lib" / "site-packages"
    name = f"frozen{uuid.uuid4().hex[:6]}"
    versions = site / f"{name}_plugin" / "migrations"
    versions.mkdir(parents=True)
    source = plugin_source(
        name, MODELS, migrations=f"__import__('pathlib').Path({str(versions)!r})"
    )
    package = installer.install(name, source)
    monkeypatch.setattr(host_migrations, "site_packages", lambda: (site.resolve(),))
    migrating_env(monkeypatch, instance_path, f"sqlite:///{tmp_path / 'frozen.db'}")

    result = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "create notes"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: plugin '{name}' is not installed editable (its migrations are an installed copy"
        f" in {versions}): run uv pip install -e <path to its project>\n"
    )
    assert list(versions.iterdir()) == []  # nothing written into the installed copy

    # Installed from a local project (PEP 610 direct_url.json): the hint names that project.
    project = tmp_path / "my project"
    [info] = [
        path
        for path in installer.root.glob("*.dist-info")
        if package in (path / "entry_points.txt").read_text()
    ]
    (info / "direct_url.json").write_text(json.dumps({"url": project.as_uri(), "dir_info": {}}))
    again = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "create notes"])
    assert again.exit_code == 1
    assert f"run uv pip install -e {project}\n" in again.output


def test_makemigrations_on_a_database_not_up_to_date_says_what_to_run(
    installer: Installer, tmp_path: Path, instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, versions = notes_plugin(installer, tmp_path)
    monkeypatch.setenv("POWERSTRIP_ENVIRONMENT", "testing")
    monkeypatch.setenv("POWERSTRIP_INSTANCE_PATH", str(instance_path))
    result = CliRunner().invoke(plugins, ["makemigrations", name, "-m", "create notes"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: Target database is not up to date. (run: powerstrip db upgrade)\n"
    )
    assert list(versions.iterdir()) == []


def test_project_of_an_unknown_distribution_is_a_placeholder() -> None:
    assert project_of(None) == "<path to its project>"
    assert project_of(f"no-such-distribution-{uuid.uuid4().hex}") == "<path to its project>"


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


def test_tables_created_follows_the_revisions_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text(
        "def upgrade():\n"
        "    op.create_table('x_a', sa.Column('id', sa.Integer()))\n"
        "    op.create_table(table_name='x_b')\n"
        "    op.create_table('x_c')\n"
        "    op.create_table(NAME)  # not a literal: unknown\n"
        "def downgrade():\n"
        "    op.create_table('x_never')\n"
    )
    second.write_text(
        "def upgrade():\n"
        "    op.drop_table('x_a')\n"
        "    with op.batch_alter_table('x_b') as batch_op:\n"
        "        batch_op.create_index('ix', ['id'])\n"
        "    op.rename_table('x_c', new_table_name='x_d')\n"
        "    op.create_table('x_a')  # created again, after the drop\n"
    )
    assert tables_created([first]) == {"x_a", "x_b", "x_c"}
    assert tables_created([first, second]) == {"x_a", "x_b", "x_d"}
    assert tables_created([second]) == {"x_a", "x_d"}


def test_db_group_is_flask_migrates_with_our_upgrade(app: Flask) -> None:
    result = db(app, "--help")
    assert result.exit_code == 0, result.output
    assert "-d, --directory" in result.output  # flask-migrate's group options
    assert "downgrade" in result.output
    upgrade = db(app, "upgrade", "--help")
    assert "(default: the head of the host's" in upgrade.output  # ours
    assert "migrate" in app.extensions  # installed when the group ran
    assert isinstance(app.cli.commands["db"], host_migrations.DbGroup)  # and still ours


def loaded_by_serving(env: dict[str, str]) -> list[str]:
    """Which of Alembic, flask-migrate, Mako and redis a fresh process has after
    ``import wsgi`` (the app gunicorn serves) in ``env``."""
    heavy = ("alembic", "flask_migrate", "mako", "redis")
    probe = f"import sys, wsgi; print(*(m for m in {heavy!r} if m in sys.modules))"
    served = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return served.stdout.split()


def test_a_served_app_imports_neither_alembic_nor_redis(tmp_path: Path) -> None:
    """They cost a third of a second of startup and MiBs per worker; only commands use
    Alembic, and only a redis:// rate-limit storage needs Redis."""
    env = {
        "POWERSTRIP_INSTANCE_PATH": str(tmp_path),
        "POWERSTRIP_ENVIRONMENT": "development",
        "POWERSTRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'probe.db'}",
    }
    assert loaded_by_serving(env) == []
    redis_url = {"POWERSTRIP_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15"}
    assert loaded_by_serving(env | redis_url) == ["redis"]
