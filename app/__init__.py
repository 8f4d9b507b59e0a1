"""Powerstrip's host application: the composition root and everything behind it.

Plugins never import this package: their SDK is :mod:`powerstrip`. What the host offers to
the processes that run it (``wsgi.py``, tests, the console script) is below.
"""

from __future__ import annotations

from app.config import ConfigError, StartupError
from app.factory import create_app
from app.loader import PluginError

__all__ = ["ConfigError", "PluginError", "StartupError", "create_app"]
