"""``flask plugins list|check|config|makemigrations|new``: find, check, migrate, start plugins.

These commands are registered through the ``flask.commands`` entry point, so they run
without ``--app`` loading the app first: they build it themselves in lenient mode, so a
broken plugin is reported instead of stopping the command.
"""

from __future__ import annotations

import json
from typing import Any

import click
from alembic.util import CommandError
from flask import Flask

from app.config import StartupError, redacted
from app.db import DATABASE
from app.factory import PLUGINS, create_app
from app.loader import PluginRecord
from app.migrations import make_revision, unmigrated_tables
from powerstrip.scaffold import new

COLUMNS = ("NAME", "VERSION", "DISTRIBUTION", "STATE", "ROUTES", "REASON")


def _app() -> Flask:
    try:
        # Lenient, and quiet: these commands print every problem themselves.
        return create_app({"PLUGINS_STRICT": False, "LOG_LEVEL": "CRITICAL"})
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


def _records() -> dict[str, PluginRecord]:
    records: dict[str, PluginRecord] = _app().extensions[PLUGINS]
    return records


def _row(record: PluginRecord) -> tuple[str, ...]:
    routes = str(record.routes) if record.state == "enabled" else "-"
    return (
        record.name,
        record.version or "-",
        record.distribution or "-",
        record.state,
        routes,
        record.reason or "",
    )


@click.group("plugins")
def plugins() -> None:
    """Inspect and check the installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_plugins(as_json: bool) -> None:
    """List every installed plugin: version, distribution, state (and why), routes."""
    rows = [_row(record) for _, record in sorted(_records().items())]
    if as_json:
        keys = [column.lower() for column in COLUMNS]
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for row in [COLUMNS, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _migration_problems(app: Flask) -> list[str]:
    """One line per enabled plugin whose models have tables its migrations do not create."""
    records: dict[str, PluginRecord] = app.extensions[PLUGINS]
    try:
        missing = unmigrated_tables(app, records)
    except CommandError as exc:  # a broken revision graph: flask db upgrade would fail too
        return [f"migrations cannot be read: {exc}"]
    problems = []
    for name, tables in sorted(missing.items()):
        plugin = records[name].plugin
        declare = "declare Plugin.migrations, then " if plugin and not plugin.migrations else ""
        problems.append(
            f"plugin {name!r}: models without a migration: {', '.join(tables)}"
            f' ({declare}run: powerstrip plugins makemigrations {name} -m "...")'
        )
    return problems


@plugins.command("check")
def check_plugins() -> None:
    """Load and validate every plugin without serving; exit 1 listing the problems.

    Besides load failures, an enabled plugin's models need migrations that create their tables.
    """
    app = _app()
    records: dict[str, PluginRecord] = app.extensions[PLUGINS]
    failed = sorted((r for r in records.values() if r.state == "failed"), key=lambda r: r.name)
    problems = [f"plugin {record.name!r}: {record.reason}" for record in failed]
    unmigrated = _migration_problems(app)
    for line in [*problems, *unmigrated]:
        click.echo(line, err=True)
    enabled = sum(record.state == "enabled" for record in records.values())
    summary = f"{enabled} enabled, {len(records) - enabled - len(failed)} disabled"
    counts = [f"{len(failed)} plugin(s) failed"] if failed else []
    counts += [f"{len(unmigrated)} migration problem(s)"] if unmigrated else []
    if counts:
        raise click.ClickException(f"{', '.join(counts)}; {summary}")
    click.echo(f"all plugins OK: {summary}")


@plugins.command("config")
@click.argument("name")
def plugin_config(name: str) -> None:
    """Print a plugin's effective settings as JSON, secrets redacted."""
    record = _records().get(name)
    if record is None or record.plugin is None:
        state = "not installed" if record is None else f"{record.state}: {record.reason}"
        raise click.ClickException(f"plugin {name!r} is {state}")
    values: dict[str, Any] = {}
    if record.plugin.settings is not None:
        schema = record.plugin.settings()
        values = redacted(schema.dump(record.settings), schema)
    click.echo(json.dumps(values, indent=2, default=str))


@plugins.command("makemigrations")
@click.argument("name")
@click.option("-m", "--message", required=True, help="What the revision does.")
def make_migrations(name: str, message: str) -> None:
    """Autogenerate a migration of plugin NAME's tables into its own versions directory."""
    app = _app()
    record = app.extensions[PLUGINS].get(name)
    if record is None or record.state != "enabled":
        raise click.ClickException(f"plugin {name!r} is not enabled")
    try:
        click.echo(f"created {make_revision(app, record, message)}")
    except CommandError as exc:  # Alembic's refusals: say them in one line, with the way out
        hint = " (run: powerstrip db upgrade)" if "not up to date" in str(exc) else ""
        raise click.ClickException(f"{exc}{hint}") from None
    finally:
        app.extensions[DATABASE].engine.dispose()


plugins.add_command(new)  # the SDK's `new` writes a plugin project: it needs no app
