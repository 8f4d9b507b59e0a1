"""Powerstrip's plugin SDK: everything a plugin may import from the host.

A plugin imports ``powerstrip`` (and the libraries it uses), never the host application
(``app``) and never another plugin's internals; import-linter enforces it. Importing this
package is light: it loads no database driver, migration tool, rate limiter or host module.

The names below are the whole public surface (a test pins ``__all__``); docs/plugins.md
describes each in one line.
"""

from __future__ import annotations

from flask_injector import request as request_scope

from powerstrip.auth import Authenticator, Caller, Principal, requires
from powerstrip.cli import injected
from powerstrip.conditional import Precondition, conditional
from powerstrip.contracts import (
    Clock,
    Directory,
    HealthCheck,
    PluginInfo,
    PluginRegistry,
    RateLimits,
)
from powerstrip.db import Model, UnitOfWork, UtcDateTime, Versioned, refuse_long_strings
from powerstrip.events import EventBus
from powerstrip.http import (
    API_KEY_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENT_REPLAYED_HEADER,
    IF_MATCH_HEADER,
    NO_STORE_HEADERS,
    REQUEST_ID_HEADER,
)
from powerstrip.idempotency import idempotent
from powerstrip.metrics import PluginMetrics
from powerstrip.paging import Page, PageQuery, PageRequest, fetch_page, paginated
from powerstrip.plugin import ENTRY_POINT_GROUP, Plugin, PluginContext, settings_environment
from powerstrip.problems import Problem, problem_responses

__all__ = [
    "API_KEY_HEADER",
    "ENTRY_POINT_GROUP",
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENT_REPLAYED_HEADER",
    "IF_MATCH_HEADER",
    "NO_STORE_HEADERS",
    "REQUEST_ID_HEADER",
    "Authenticator",
    "Caller",
    "Clock",
    "Directory",
    "EventBus",
    "HealthCheck",
    "Model",
    "Page",
    "PageQuery",
    "PageRequest",
    "Plugin",
    "PluginContext",
    "PluginInfo",
    "PluginMetrics",
    "PluginRegistry",
    "Precondition",
    "Principal",
    "Problem",
    "RateLimits",
    "UnitOfWork",
    "UtcDateTime",
    "Versioned",
    "conditional",
    "fetch_page",
    "idempotent",
    "injected",
    "paginated",
    "problem_responses",
    "refuse_long_strings",
    "request_scope",
    "requires",
    "settings_environment",
]
