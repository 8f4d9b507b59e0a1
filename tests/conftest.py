"""Shared fixtures: an isolated app per test, built only through ``create_app``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from tests.plugin_fixtures import Installer
from tests.support import register_probe

AppFactory = Callable[..., Flask]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No POWERSTRIP_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("POWERSTRIP_"):
            monkeypatch.delenv(name)


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def make_app(instance_path: Path) -> AppFactory:
    """Build an app with the probe blueprint; keyword arguments override configuration."""

    def factory(**overrides: Any) -> Flask:
        config = {"ENVIRONMENT": "testing", "INSTANCE_PATH": str(instance_path), **overrides}
        return register_probe(create_app(config))

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def installer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installer:
    """Installs fixture plugin distributions into a temporary path on ``sys.path``."""
    root = tmp_path / "site"
    root.mkdir()
    return Installer(root, monkeypatch)
