"""Powerstrip: a Flask REST API host composed of plugins."""

from __future__ import annotations

from app.config import ConfigError
from app.errors import Problem
from app.factory import create_app

__all__ = ["ConfigError", "Problem", "create_app"]
