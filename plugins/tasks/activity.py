"""The activity feed: the plugin subscribes to its own events, inside their transaction."""

from __future__ import annotations

from injector import inject

from plugins.tasks.contracts import TasksEvent
from plugins.tasks.repository import TasksRepository
from powerstrip import Clock, UnitOfWork


class ActivityRecorder:
    """Writes one activity entry per change, atomically with it.

    Subscribed ``in_transaction``: events arrive as they are published, inside the change's
    unit of work, which this block joins (the request's or command's session); the entry
    commits or rolls back with the change. An event published outside any unit of work gets
    a transaction of its own here.
    """

    @inject
    def __init__(self, repository: TasksRepository, uow: UnitOfWork, clock: Clock) -> None:
        self._repository = repository
        self._uow = uow
        self._clock = clock

    def __call__(self, event: TasksEvent) -> None:
        """Record ``event`` in the publisher's transaction."""
        with self._uow:
            self._repository.record(
                project_id=event.project_id,
                kind=event.kind,
                actor=event.actor,
                detail=event.detail(),
                created_at=self._clock.now(),
            )
