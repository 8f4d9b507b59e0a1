"""Migrations through Flask-Migrate/Alembic: the host owns env.py, each plugin its versions.

Every enabled plugin that declares ``Plugin.migrations`` has that directory on Alembic's
``version_locations``; its revisions form a branch labelled with the plugin's name. So:

- ``flask db upgrade`` brings every enabled plugin to its head (``heads``, not ``head``:
  there is one head per plugin);
- ``flask plugins makemigrations NAME -m MSG`` autogenerates a revision for one plugin, in its
  own directory, comparing only its tables (the first one starts the plugin's branch and
  depends on the branches of the plugins it requires, for cross-plugin foreign keys);
- ``flask db downgrade base``, ``flask db check``, ``history``, ``heads``... as in Alembic.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import click
import flask_migrate
import flask_migrate.cli
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from flask.cli import with_appcontext
from flask_migrate import Migrate

from app.db import DATABASE, Database
from app.loader import PluginRecord

MIGRATIONS = "powerstrip.migrations"
ALEMBIC_DIRECTORY = Path(__file__).parent / "alembic"


@dataclass(frozen=True, slots=True)
class MigrationSettings:
    """What env.py needs: the database and the enabled plugins (by load order)."""

    database: Database
    plugins: tuple[str, ...]
    version_locations: tuple[str, ...]


@click.command("upgrade")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
@click.option("--tag", default=None, help="Arbitrary tag for custom env.py scripts.")
@click.option("-x", "--x-arg", multiple=True, help="Additional arguments for env.py.")
@click.argument("revision", default="heads")
@with_appcontext
def upgrade(sql: bool, tag: str | None, x_arg: tuple[str, ...], revision: str) -> None:
    """Upgrade to a later version (default: every plugin's head)."""
    flask_migrate.upgrade(revision=revision, sql=sql, tag=tag, x_arg=list(x_arg))


def _db_group() -> click.Group:
    """flask-migrate's ``db`` group (its options and callback), with our ``upgrade``."""
    original: click.Group = flask_migrate.cli.db
    return click.Group(
        "db",
        commands={**original.commands, "upgrade": upgrade},
        callback=original.callback,
        params=original.params,
        help="Database migrations (Alembic): every enabled plugin's branch.",
    )


def alembic_config(app: Flask, *, plugin: str | None = None, autogenerate: bool = False) -> Config:
    """The Alembic configuration of ``app``, optionally scoped to one plugin's tables."""
    migrate: Migrate = app.extensions["migrate"].migrate
    opts = ["autogenerate"] if autogenerate else None
    x_arg = [f"plugin={plugin}"] if plugin else None
    config: Config = migrate.get_config(opts=opts, x_arg=x_arg)
    return config


def init_app(app: Flask, enabled: list[PluginRecord]) -> None:
    """Point Alembic at every enabled plugin's versions and install ``flask db``."""
    plugins = tuple(record.name for record in enabled)
    locations = [str(ALEMBIC_DIRECTORY / "versions")] + [
        str(record.plugin.migrations)
        for record in enabled
        if record.plugin is not None and record.plugin.migrations is not None
    ]
    database: Database = app.extensions[DATABASE]
    app.extensions[MIGRATIONS] = MigrationSettings(database, plugins, tuple(locations))

    migrate = Migrate(directory=str(ALEMBIC_DIRECTORY), command="db")

    def set_locations(config: Config) -> Config:
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join(locations))
        if importlib.util.find_spec("ruff") is not None:  # format new revisions (dev installs)
            config.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
            for hook, options in (
                ("ruff_fix", "check --fix-only --quiet"),
                ("ruff_format", "format --quiet"),
            ):
                config.set_section_option("post_write_hooks", f"{hook}.type", "module")
                config.set_section_option("post_write_hooks", f"{hook}.module", "ruff")
                config.set_section_option(
                    "post_write_hooks", f"{hook}.options", f"{options} REVISION_SCRIPT_FILENAME"
                )
        return config

    migrate.configure(set_locations)
    migrate.init_app(app)
    app.cli.add_command(_db_group())  # replaces flask-migrate's group: upgrade means heads


def make_revision(app: Flask, record: PluginRecord, message: str) -> str:
    """Autogenerate a revision of one plugin's tables into its own versions directory."""
    plugin = record.plugin
    if plugin is None or plugin.migrations is None:
        raise click.ClickException(f"plugin {record.name!r} declares no migrations directory")
    with app.app_context():
        config = alembic_config(app, plugin=record.name, autogenerate=True)
        script = ScriptDirectory.from_config(config)
        labels = {label for rev in script.walk_revisions() for label in rev.branch_labels}
        if record.name in labels:
            created = command.revision(
                config, message, autogenerate=True, head=f"{record.name}@head"
            )
        else:
            depends_on = [f"{name}@head" for name in plugin.requires if name in labels]
            created = command.revision(
                config,
                message,
                autogenerate=True,
                head="base",
                branch_label=record.name,
                version_path=str(plugin.migrations),
                # Alembic accepts a list here (its annotation says str).
                depends_on=cast(Any, depends_on) or None,
            )
    revisions = created if isinstance(created, list) else [created]
    return ", ".join(str(getattr(r, "path", r)) for r in revisions if r is not None)
