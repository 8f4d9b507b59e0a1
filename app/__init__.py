"""Powerstrip: a Flask REST API host composed of plugins.

This module is the public SDK: what a plugin may import. Everything else in ``app`` is host
internals and may change without notice.
"""

from __future__ import annotations

from app.auth import Principal, requires
from app.config import ConfigError, HostConfig, StartupError
from app.contracts import Clock, HealthCheck
from app.db import Model, UnitOfWork, UtcDateTime
from app.errors import Problem
from app.events import EventBus
from app.factory import create_app
from app.injection import injected
from app.loader import PluginError, PluginRecord
from app.plugin import ENTRY_POINT_GROUP, Plugin, PluginContext, settings_environment
from app.ratelimit import RateLimits

__all__ = [
    "ENTRY_POINT_GROUP",
    "Clock",
    "ConfigError",
    "EventBus",
    "HealthCheck",
    "HostConfig",
    "Model",
    "Plugin",
    "PluginContext",
    "PluginError",
    "PluginRecord",
    "Principal",
    "Problem",
    "RateLimits",
    "StartupError",
    "UnitOfWork",
    "UtcDateTime",
    "create_app",
    "injected",
    "requires",
    "settings_environment",
]
