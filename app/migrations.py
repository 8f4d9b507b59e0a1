"""Migrations through Flask-Migrate/Alembic: the host owns env.py, each plugin its versions.

Every enabled plugin that declares ``Plugin.migrations`` has that directory on Alembic's
``version_locations``; its revisions form a branch labelled with the plugin's name. The host's
own tables (``host_...``) have their revisions in ``app/alembic/versions``, on the branch
labelled ``host`` (a name no plugin may take). So:

- ``flask db upgrade`` brings the host and every enabled plugin to its head (``heads``, not
  ``head``: there is one head per branch);
- ``flask plugins makemigrations NAME -m MSG`` autogenerates a revision for one plugin, in its
  own directory, comparing only its tables (the first one starts the plugin's branch and
  depends on the branches of the plugins it requires, for cross-plugin foreign keys);
- ``flask db downgrade base``, ``flask db check``, ``history``, ``heads``... as in Alembic.

Autogenerate renders the SDK's column types (``powerstrip.UtcDateTime``) as their SQLAlchemy
implementation, so a revision needs only ``sqlalchemy as sa`` and runs wherever the host does.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sysconfig
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import unquote, urlparse

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy.types import TypeDecorator

from app.db import DATABASE, Database
from app.loader import PluginRecord
from powerstrip.db import Model
from powerstrip.plugin import HOST_NAMESPACE

if TYPE_CHECKING:
    # Alembic and flask-migrate are imported by the functions that use them, when a command
    # runs: a served app never needs them, and importing them (with Mako) cost a tenth of its
    # startup and about 10 MiB of every worker's memory.
    from alembic.autogenerate.api import AutogenContext
    from alembic.config import Config
    from flask_migrate import Migrate

MIGRATIONS = "powerstrip.migrations"
ALEMBIC_DIRECTORY = Path(__file__).parent / "alembic"


@dataclass(frozen=True, slots=True)
class MigrationSettings:
    """What env.py needs: the database and the enabled plugins (by load order)."""

    database: Database
    plugins: tuple[str, ...]
    version_locations: tuple[str, ...]

    def table_prefixes(self, only: str | None = None) -> tuple[str, ...]:
        """The tables in scope: ``only``'s (a plugin, or ``host``), else the host's and every
        enabled plugin's."""
        names = [only] if only else [HOST_NAMESPACE, *self.plugins]
        return tuple(f"{name}_" for name in names)


@click.command("upgrade")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
@click.option("--tag", default=None, help="Arbitrary tag for custom env.py scripts.")
@click.option("-x", "--x-arg", multiple=True, help="Additional arguments for env.py.")
@click.argument("revision", default="heads")
@with_appcontext
def upgrade(sql: bool, tag: str | None, x_arg: tuple[str, ...], revision: str) -> None:
    """Upgrade to a later version (default: the head of the host's and every plugin's branch)."""
    import flask_migrate  # noqa: PLC0415 - Alembic only when a command runs

    flask_migrate.upgrade(revision=revision, sql=sql, tag=tag, x_arg=list(x_arg))


def is_sdk_type(obj: object) -> bool:
    """Whether ``obj`` is a column type of the plugin SDK (a TypeDecorator in ``powerstrip``)."""
    module = type(obj).__module__
    return isinstance(obj, TypeDecorator) and (
        module == "powerstrip" or module.startswith("powerstrip.")
    )


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Alembic's ``render_item`` hook: an SDK column type renders as its implementation."""
    if type_ == "type" and is_sdk_type(obj):
        prefix = autogen_context.opts["sqlalchemy_module_prefix"] or ""
        return f"{prefix}{obj.impl_instance!r}"
    return False  # Alembic's own rendering


DB_HELP = "Database migrations (Alembic): the host's branch and every enabled plugin's."


class DbGroup(click.Group):
    """``flask db``: flask-migrate's group (its options, callback and commands) with our
    ``upgrade``, loaded with Alembic when a ``db`` command runs, not when the app is built."""

    def __init__(self, app: Flask) -> None:
        super().__init__("db", help=DB_HELP)
        self._app = app
        self._loaded: click.Group | None = None

    def _group(self) -> click.Group:
        if self._loaded is None:
            import flask_migrate.cli  # noqa: PLC0415 - Alembic only when a command runs

            original: click.Group = flask_migrate.cli.db
            migrate_extension(self._app)
            self.params, self.callback = original.params, original.callback
            self._loaded = click.Group(
                "db", commands={**original.commands, "upgrade": upgrade}, help=DB_HELP
            )
        return self._loaded

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self._group()  # the group's own options (--directory, --x-arg) are flask-migrate's
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)


def migrate_extension(app: Flask) -> Migrate:
    """flask-migrate's extension of ``app``, installed on first use (it imports Alembic)."""
    found = app.extensions.get("migrate")
    if found is not None:
        migrate: Migrate = found.migrate
        return migrate
    from flask_migrate import Migrate  # noqa: PLC0415 - Alembic only when a command runs

    settings: MigrationSettings = app.extensions[MIGRATIONS]
    migrate = Migrate(directory=str(ALEMBIC_DIRECTORY), command="db")
    migrate.configure(partial(_configure, settings.version_locations))
    commands = dict(app.cli.commands)
    migrate.init_app(app)
    app.cli.commands = commands  # flask-migrate adds its own db group: ours stays
    return migrate


def alembic_config(app: Flask, *, plugin: str | None = None, autogenerate: bool = False) -> Config:
    """The Alembic configuration of ``app``, optionally scoped to one plugin's tables."""
    migrate = migrate_extension(app)
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
    app.cli.add_command(DbGroup(app))


def _configure(locations: tuple[str, ...], config: Config) -> Config:
    """flask-migrate's configure callback: every branch's versions, ruff on new revisions."""
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


def site_packages() -> tuple[Path, ...]:
    """Where this interpreter installs distributions (``purelib`` and ``platlib``)."""
    paths = sysconfig.get_paths()
    return tuple(Path(paths[key]).resolve() for key in ("purelib", "platlib"))


def is_installed_copy(directory: Path) -> bool:
    """Whether ``directory`` is an installed copy, not source: in site-packages, or read-only."""
    resolved = directory.resolve()
    in_site = any(resolved.is_relative_to(root) for root in site_packages())
    return in_site or not os.access(resolved, os.W_OK)


def project_of(distribution: str | None) -> str:
    """The local project a distribution was installed from (its PEP 610 ``direct_url.json``)."""
    text = None
    if distribution is not None:
        with suppress(metadata.PackageNotFoundError):
            text = metadata.distribution(distribution).read_text("direct_url.json")
    url = urlparse(str(json.loads(text).get("url", ""))) if text else None
    return unquote(url.path) if url and url.scheme == "file" else "<path to its project>"


def refuse_installed_copy(record: PluginRecord, versions: Path) -> None:
    """Refuse to write a revision into an installed copy of a plugin (a non-editable install)."""
    if is_installed_copy(versions):
        raise click.ClickException(
            f"plugin {record.name!r} is not installed editable (its migrations are an installed"
            f" copy in {versions}): run uv pip install -e {project_of(record.distribution)}"
        )


def make_revision(app: Flask, record: PluginRecord, message: str) -> str:
    """Autogenerate a revision of one plugin's tables into its own versions directory."""
    plugin = record.plugin
    if plugin is None or plugin.migrations is None:
        raise click.ClickException(f"plugin {record.name!r} declares no migrations directory")
    refuse_installed_copy(record, plugin.migrations)
    empty: list[bool] = []

    def skip_empty(_context: Any, _revision: Any, directives: list[Any]) -> None:
        """Alembic's hook before writing: an autogenerated revision that does nothing is not
        written (Alembic would write an empty one)."""
        if directives and directives[0].upgrade_ops.is_empty():
            empty.append(True)
            directives.clear()

    from alembic import command  # noqa: PLC0415 - Alembic only when a command runs
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    with app.app_context():
        config = alembic_config(app, plugin=record.name, autogenerate=True)
        script = ScriptDirectory.from_config(config)
        labels = {label for rev in script.walk_revisions() for label in rev.branch_labels}
        if record.name in labels:
            created = command.revision(
                config,
                message,
                autogenerate=True,
                head=f"{record.name}@head",
                process_revision_directives=skip_empty,
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
                process_revision_directives=skip_empty,
            )
    if empty:
        raise click.ClickException(
            f"no changes in plugin {record.name!r}'s models since its last revision: "
            "nothing written"
        )
    revisions = created if isinstance(created, list) else [created]
    return ", ".join(str(getattr(r, "path", r)) for r in revisions if r is not None)


def plugin_tables(names: Iterable[str]) -> dict[str, set[str]]:
    """Each plugin's tables in the shared metadata: ``<plugin>_...`` (the longest name wins)."""
    by_length = sorted(names, key=len, reverse=True)
    tables: dict[str, set[str]] = {name: set() for name in by_length}
    for table in Model.metadata.tables.values():
        owner = next((name for name in by_length if table.name.startswith(f"{name}_")), None)
        if owner is not None:
            tables[owner].add(table.name)
    return tables


TABLE_OPERATIONS = {
    "create_table": ("table_name",),
    "drop_table": ("table_name",),
    "rename_table": ("old_table_name", "new_table_name"),
}


def _upgrade_calls(source: str) -> list[ast.Call]:
    """The ``*.create_table``, ``drop_table`` and ``rename_table`` calls of ``upgrade()``."""
    calls = [
        node
        for function in ast.parse(source).body
        if isinstance(function, ast.FunctionDef) and function.name == "upgrade"
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TABLE_OPERATIONS
    ]
    return sorted(calls, key=lambda call: (call.lineno, call.col_offset))  # source order


def _table_names(call: ast.Call, parameters: tuple[str, ...]) -> tuple[str, ...] | None:
    """The call's table-name arguments, if all are literal strings (positional or keyword)."""
    given: dict[str | None, ast.expr] = dict(zip(parameters, call.args, strict=False))
    given.update((keyword.arg, keyword.value) for keyword in call.keywords)
    nodes = [given.get(parameter) for parameter in parameters]
    names = tuple(
        n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )
    return names if len(names) == len(parameters) else None


def tables_created(revision_files: Iterable[Path]) -> set[str]:
    """The tables that exist after running these revision files' ``upgrade()`` in order."""
    tables: set[str] = set()
    for path in revision_files:
        for call in _upgrade_calls(path.read_text(encoding="utf-8")):
            operation = cast(ast.Attribute, call.func).attr
            names = _table_names(call, TABLE_OPERATIONS[operation])
            if names is None:
                continue
            if operation != "create_table":
                tables.discard(names[0])
            if operation != "drop_table":
                tables.add(names[-1])
    return tables


def unmigrated_tables(app: Flask, records: Mapping[str, PluginRecord]) -> dict[str, list[str]]:
    """Each enabled plugin's model tables that its migrations do not create (if any).

    Cheap and without a database: a plugin's model tables are those named ``<plugin>_...`` in
    the shared metadata; the tables its migrations create are read, not run, from its revision
    files (those in ``Plugin.migrations``, base to head as Alembic orders them): the
    ``create_table``, ``drop_table`` and ``rename_table`` calls with literal table names in each
    ``upgrade()``, which is what autogenerate writes. ``flask db check`` remains the full
    comparison (columns, indexes, types) against a migrated database.
    """
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - Alembic only when it runs

    with app.app_context():
        script = ScriptDirectory.from_config(alembic_config(app))
        files = [Path(rev.path) for rev in reversed(list(script.walk_revisions()))]
    missing: dict[str, list[str]] = {}
    for name, tables in plugin_tables(records).items():
        plugin = records[name].plugin
        if records[name].state != "enabled" or plugin is None or not tables:
            continue
        versions = plugin.migrations.resolve() if plugin.migrations else None
        created = tables_created(f for f in files if f.parent.resolve() == versions)
        if tables - created:
            missing[name] = sorted(tables - created)
    return missing
