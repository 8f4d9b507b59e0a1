"""Install small real distributions (``.dist-info`` with entry points) into a temporary path."""

from __future__ import annotations

import importlib
import textwrap
import uuid
from pathlib import Path

import pytest

OK_PLUGIN = """
from flask_smorest import Blueprint
from app import Plugin

blp = Blueprint("{name}", __name__)

@blp.route("/hello")
@blp.response(200)
def hello():
    \"\"\"Say hello.\"\"\"
    return {{"plugin": "{name}"}}

plugin = Plugin(name="{name}", version="1.2.3", description="The {name} plugin",
                requires={requires!r}, blueprints=[blp])
"""


class Installer:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
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
        source = code if code is not None else OK_PLUGIN.format(name=name, requires=requires)
        (self.root / package / "__init__.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
        if host_requirement is not None:
            metadata += f"Requires-Dist: powerstrip{host_requirement}\n"
        (info / "METADATA").write_text(metadata)
        (info / "entry_points.txt").write_text(f"[powerstrip.plugins]\n{name} = {package}:plugin\n")
        importlib.invalidate_caches()
        return package
