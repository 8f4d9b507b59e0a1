"""Install small real distributions (``.dist-info`` with entry points) into a temporary path."""

from __future__ import annotations

import importlib
import json
import textwrap
import uuid
from pathlib import Path

import pytest

HEADER = """
from typing import Protocol, runtime_checkable
import click
import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from injector import inject
from powerstrip import Plugin

blp = Blueprint({name!r}, __name__)
"""

HELLO_VIEW = """
@blp.route("/hello")
@blp.response(200)
def hello():
    \"\"\"Say hello.\"\"\"
    return {{"plugin": {name!r}}}
"""


def plugin_source(name: str, body: str = HELLO_VIEW, **fields: str) -> str:
    """Source of a plugin module: imports, a blueprint ``blp``, ``body``, then ``plugin``.

    ``fields`` are extra ``Plugin`` arguments as source text, e.g. ``requires="('a',)"``.
    """
    extra = "".join(f", {key}={value}" for key, value in fields.items())
    return (
        HEADER.format(name=name)
        + textwrap.dedent(body).format(name=name)
        + f"\nplugin = Plugin(name={name!r}, version='1.2.3', blueprints=[blp]{extra})\n"
    )


class Installer:
    """Installs plugins for one test and enables them (``POWERSTRIP_PLUGINS``)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, enabled: list[str]) -> None:
        self.root = root
        self.enabled = list(enabled)
        self._monkeypatch = monkeypatch
        monkeypatch.syspath_prepend(str(root))

    def install(
        self,
        name: str,
        code: str | None = None,
        *,
        requires: tuple[str, ...] = (),
        host_requirement: str | None = ">=0.1",
        distribution: str | None = None,
    ) -> str:
        """Write a package and its dist-info; return the package name."""
        package = f"fixture_{name.lower().replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        dist = distribution or f"powerstrip-{package.replace('_', '-')}"
        (self.root / package).mkdir()
        if code is None:
            code = plugin_source(
                name, requires=repr(requires), description=repr(f"The {name} plugin")
            )
        (self.root / package / "__init__.py").write_text(code)
        info = self.root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
        if host_requirement is not None:
            metadata += f"Requires-Dist: powerstrip{host_requirement}\n"
        (info / "METADATA").write_text(metadata)
        (info / "entry_points.txt").write_text(f"[powerstrip.plugins]\n{name} = {package}:plugin\n")
        importlib.invalidate_caches()
        if name not in self.enabled:
            self.enabled.append(name)
            self._monkeypatch.setenv("POWERSTRIP_PLUGINS", json.dumps(self.enabled))
        return package
