"""The activity feed: the plugin subscribes to its own events, delivered after commit."""

from __future__ import annotations

from injector import inject

from plugins.tasks.contracts import TasksEvent
from plugins.tasks.models import Activity
from plugins.tasks.repository import TasksRepository
from powerstrip import Clock, UnitOfWork


class ActivityRecorder:
    """Writes one activity entry per committed change, in a unit of work of its own.

    Events arrive after the change's unit of work committed, so this block is a new
    transaction on the same request (or command) session.
    """

    @inject
    def __init__(self, repository: TasksRepository, uow: UnitOfWork, clock: Clock) -> None:
        self._repository = repository
        self._uow = uow
        self._clock = clock

    def __call__(self, event: TasksEvent) -> None:
        """Record ``event`` (only ever called for work that committed)."""
        with self._uow:
            self._repository.add(
                Activity(
                    project_id=event.project_id,
                    kind=event.kind,
                    actor=event.actor,
                    detail=event.detail(),
                    created_at=self._clock.now(),
                )
            )
