"""The plugin contract: one declarative value a plugin's entry point points at.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."powerstrip.plugins"]
    hello = "hello_plugin:plugin"

and ``hello_plugin.plugin`` is a :class:`Plugin`. Data, not inheritance: there is no base class
to subclass and no hook to override.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import injector
import marshmallow as ma

if TYPE_CHECKING:
    from flask import Flask

    from powerstrip.auth import Authenticator
    from powerstrip.events import EventBus
    from powerstrip.metrics import PluginMetrics

ENTRY_POINT_GROUP = "powerstrip.plugins"
_SETTINGS_ENVIRONMENT: ContextVar[str] = ContextVar(
    "powerstrip_settings_environment", default="production"
)
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{1,31}")
HOST_NAMESPACE = "host"
"""The host's own tables are ``host_...`` and its revisions the ``host`` branch: no plugin is
named ``host`` or ``host_...`` (its tables, ``<plugin>_...``, would share the prefix)."""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a plugin (the pattern, the host's reserved name), or None."""
    if not NAME_PATTERN.fullmatch(name):
        return "invalid name: use 2-32 of a-z, 0-9 and _, starting with a letter"
    if name == HOST_NAMESPACE or name.startswith(f"{HOST_NAMESPACE}_"):
        return f"reserved name: {HOST_NAMESPACE} and {HOST_NAMESPACE}_... name the host's tables"
    return None


InjectorModule = injector.Module | type[injector.Module] | Callable[[injector.Binder], None]


@dataclass(frozen=True, kw_only=True)
class Plugin:
    """What a plugin contributes to the host.

    :param name: lower-case identifier (``[a-z][a-z0-9_]{1,31}``); equals the entry-point name,
        prefixes the plugin's routes (``/api/v1/<name>``), operationIds and tables
    :param version: the plugin's version
    :param description: one line; becomes the plugin's OpenAPI tag description
    :param requires: names of plugins this one needs; they load first
    :param blueprints: flask-smorest blueprints, mounted under ``/api/v1/<name>``
    :param modules: injector modules binding the plugin's services
    :param settings: a marshmallow schema for the plugin's configuration section
        (``POWERSTRIP_<NAME>__<KEY>``, TOML table ``[<name>]``); its ``@post_load`` builds the
        settings object, which is injectable by its type. Mark secret fields with
        ``metadata={"secret": True}`` so they are redacted wherever settings are printed.
    :param commands: a click group mounted as ``flask <name> ...``
    :param migrations: the plugin's Alembic versions directory (branch label = plugin name);
        the loader checks that it exists
    :param setup: called once with a :class:`PluginContext` after everything is registered;
        the place to subscribe to domain events
    :param rate_limit_exempt: exempt the plugin's blueprints from the default rate limits
    :param authenticators: classes implementing :class:`~powerstrip.Authenticator`, built by
        the injector for each request (first answer wins, plugins in load order)
    :param scopes: the scopes the plugin defines, scope -> one-line description (documented in
        OpenAPI); name them ``<plugin>:<action>``
    :param grants: role -> scopes (its own) granted to that role by default; an authenticating
        plugin (accounts) builds its default role table from every enabled plugin's grants
    """

    name: str
    version: str
    description: str = ""
    requires: Sequence[str] = ()
    blueprints: Sequence[Any] = ()
    modules: Sequence[InjectorModule] = ()
    settings: type[ma.Schema] | None = None
    commands: click.Group | None = None
    migrations: Path | None = None
    setup: Callable[[PluginContext], None] | None = None
    rate_limit_exempt: bool = False
    authenticators: Sequence[type[Authenticator]] = ()
    scopes: Mapping[str, str] = field(default_factory=dict)
    grants: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What a plugin's ``setup`` hook receives.

    :param metrics: creates the plugin's own Prometheus metrics, named ``<plugin>_...``
    """

    app: Flask
    events: EventBus
    settings: object | None
    metrics: PluginMetrics


def settings_environment() -> str:
    """The host's ENVIRONMENT while plugin settings are validated.

    For rules such as "a signing key is required outside development" in a settings schema.
    """
    return _SETTINGS_ENVIRONMENT.get()
