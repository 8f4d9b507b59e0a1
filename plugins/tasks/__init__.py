"""Tasks: the reference domain plugin (projects, members, tasks, ETags, idempotency, activity).

It depends only on the SDK's contracts: ``Principal`` and scopes for who is calling,
``Directory`` for whether a principal exists, ``UnitOfWork`` for transactions, ``EventBus``
for the activity feed; never on accounts. What other plugins may use is published in
:mod:`plugins.tasks.contracts`.
"""

from __future__ import annotations

from pathlib import Path

from plugins.tasks.access import USE
from plugins.tasks.activity import ActivityRecorder
from plugins.tasks.cli import commands
from plugins.tasks.contracts import TasksEvent
from plugins.tasks.module import TasksModule
from plugins.tasks.settings import TasksSettingsSchema
from plugins.tasks.views import blueprint
from powerstrip import Plugin, PluginContext


def setup(context: PluginContext) -> None:
    """Build the activity feed from the plugin's own events, in their transactions."""
    # In the change's own transaction: a task never exists without its activity entry.
    context.events.subscribe(TasksEvent, ActivityRecorder, in_transaction=True)


plugin = Plugin(
    name="tasks",
    version="0.1.0",
    description="Projects and tasks: membership, paging, filtering, ETags, idempotent creates.",
    blueprints=[blueprint],
    modules=[TasksModule],
    settings=TasksSettingsSchema,
    commands=commands,
    migrations=Path(__file__).parent / "migrations",
    setup=setup,
    scopes={USE: "Create projects; work in the projects one is a member of"},
    grants={"user": [USE]},
)
