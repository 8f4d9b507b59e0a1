"""powerstrip-hello: the plugin value its ``powerstrip.plugins`` entry point points at."""

from __future__ import annotations

from pathlib import Path

from powerstrip import Plugin

from powerstrip_hello.cli import commands
from powerstrip_hello.module import HelloModule
from powerstrip_hello.settings import HelloSettingsSchema
from powerstrip_hello.views import blueprint

__version__ = "0.1.0"

plugin = Plugin(
    name="hello",
    version=__version__,
    description="Greets people: an example third-party plugin.",
    blueprints=[blueprint],
    modules=[HelloModule],
    settings=HelloSettingsSchema,
    commands=commands,
    migrations=Path(__file__).parent / "migrations",
)
