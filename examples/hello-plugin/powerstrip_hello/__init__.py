"""powerstrip-hello: the plugin value its ``powerstrip.plugins`` entry point points at."""

from __future__ import annotations

from pathlib import Path

from powerstrip import Plugin, PluginContext

from powerstrip_hello.cli import commands
from powerstrip_hello.module import HelloModule
from powerstrip_hello.service import Greeted
from powerstrip_hello.settings import HelloSettingsSchema
from powerstrip_hello.views import blueprint

__version__ = "0.1.0"


def setup(context: PluginContext) -> None:
    """Count the stored greetings (``hello_greetings_stored_total``) from their event."""
    stored = context.metrics.counter("greetings_stored", "Greetings stored")
    context.events.subscribe(Greeted, lambda _event: stored.inc())


plugin = Plugin(
    name="hello",
    version=__version__,
    description="Greets people: an example third-party plugin.",
    blueprints=[blueprint],
    modules=[HelloModule],
    settings=HelloSettingsSchema,
    commands=commands,
    migrations=Path(__file__).parent / "migrations",
    setup=setup,
)
