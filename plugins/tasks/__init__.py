"""Tasks: the reference domain plugin (projects, members, tasks, ETags, idempotency, activity).

It depends only on the host's contracts: ``Principal`` and scopes for who is calling,
``UnitOfWork`` for transactions, ``EventBus`` for the activity feed; never on accounts.
"""

from __future__ import annotations

from pathlib import Path

from app import Plugin, PluginContext
from plugins.tasks.activity import ActivityRecorder
from plugins.tasks.cli import commands
from plugins.tasks.events import TasksEvent
from plugins.tasks.settings import TasksSettingsSchema
from plugins.tasks.views import blueprint


def setup(context: PluginContext) -> None:
    """Build the activity feed from the plugin's own events (delivered after commit)."""
    context.events.subscribe(TasksEvent, ActivityRecorder)


plugin = Plugin(
    name="tasks",
    version="0.1.0",
    description="Projects and tasks: membership, paging, filtering, ETags, idempotent creates.",
    blueprints=[blueprint],
    settings=TasksSettingsSchema,
    commands=commands,
    migrations=Path(__file__).parent / "migrations",
    setup=setup,
)
