"""The activity feed: the plugin subscribes to its own events, delivered after commit."""

from __future__ import annotations

from injector import inject

from app import Clock
from app.db import Database
from plugins.tasks.events import TasksEvent
from plugins.tasks.models import Activity


class ActivityRecorder:
    """Writes one activity entry per committed change, in a transaction of its own."""

    @inject
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def __call__(self, event: TasksEvent) -> None:
        """Record ``event`` (only ever called for work that committed)."""
        with self._database.sessions.begin() as session:
            session.add(
                Activity(
                    project_id=event.project_id,
                    kind=event.kind,
                    actor=event.actor,
                    detail=event.detail,
                    created_at=self._clock.now(),
                )
            )
