"""Command line: ``flask config show``, ``flask idempotency purge``, the ``powerstrip`` script."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup

from app import config
from app.idempotency import IDEMPOTENCY, KeyStore

config_command = AppGroup("config", help="Inspect the effective configuration.")
idempotency_command = AppGroup("idempotency", help="The host's Idempotency-Key records.")


@config_command.command("show")
def show_config() -> None:
    """Print the effective host configuration as JSON, secrets redacted."""
    host_config: config.HostConfig = current_app.extensions["powerstrip.config"]
    click.echo(json.dumps(config.redacted(config.as_dict(host_config)), indent=2))


@idempotency_command.command("purge")
def purge_idempotency_keys() -> None:
    """Delete the expired Idempotency-Key records; print how many."""
    store: KeyStore = current_app.extensions[IDEMPOTENCY]
    click.echo(f"deleted {store.purge()} expired idempotency key(s)")


def _create_app() -> Flask:
    from app.factory import create_app  # noqa: PLC0415 - the factory imports this module

    try:
        return create_app()
    except config.StartupError as exc:
        click.echo(f"powerstrip: {exc}", err=True)
        sys.exit(2)


cli = FlaskGroup(name="powerstrip", create_app=_create_app, help="Manage a Powerstrip host.")


def main() -> None:
    """Entry point of the ``powerstrip`` console script (``flask --app wsgi`` without --app)."""
    cli.main()
