"""The composition root: ``create_app`` builds the whole application."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from app import api, config, errors, logs, ratelimit, security
from app.cli import config_command

HOST_CONFIG = "powerstrip.config"


class _JSONProvider(DefaultJSONProvider):
    sort_keys = False  # keep documents in the order they were written (problem members, spec)


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults -> instance/config.toml -> POWERSTRIP_* env -> ``overrides``.

    Raises :class:`app.config.ConfigError` (one line naming the key) if the result is invalid.
    """
    app = Flask("app", instance_path=config.instance_path(overrides, os.environ))
    host_config = config.load(Path(app.instance_path), overrides)
    logs.configure_logging(host_config.LOG_LEVEL)
    app.config.update(
        SECRET_KEY=host_config.SECRET_KEY,
        MAX_CONTENT_LENGTH=host_config.MAX_CONTENT_LENGTH,
        TESTING=host_config.ENVIRONMENT == "testing",
    )
    app.json = _JSONProvider(app)
    app.extensions[HOST_CONFIG] = host_config

    logs.init_app(app)  # first: the request id exists before any other hook runs
    errors.init_app(app)
    smorest = api.init_app(app)
    ratelimit.init_app(app, host_config, exempt_blueprints=[api.SPEC_BLUEPRINT, api.DOCS_BLUEPRINT])
    security.init_app(app, host_config)
    app.cli.add_command(config_command)
    app.extensions["powerstrip.api"] = smorest
    return app
