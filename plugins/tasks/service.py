"""Tasks of a project: create, read, page, change, delete, purge; the activity feed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from injector import inject

from plugins.tasks.access import READ, USE, WRITE, Access
from plugins.tasks.contracts import (
    SYSTEM_ACTOR,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskUpdated,
)
from plugins.tasks.models import Activity, Task
from plugins.tasks.repository import Sort, TaskFilter, TasksRepository
from plugins.tasks.settings import TasksSettings
from powerstrip import (
    Clock,
    EventBus,
    Page,
    PageRequest,
    Precondition,
    Principal,
    Problem,
    UnitOfWork,
)

TASK_FIELDS = ("title", "description", "status", "priority", "due_date", "assignee", "labels")


class TaskService:
    """Tasks of a project."""

    @inject
    def __init__(
        self,
        repository: TasksRepository,
        access: Access,
        uow: UnitOfWork,
        events: EventBus,
        clock: Clock,
        settings: TasksSettings,
    ) -> None:
        self._repository = repository
        self._access = access
        self._uow = uow
        self._events = events
        self._clock = clock
        self._settings = settings

    def create(self, principal: Principal, project_id: int, data: dict[str, Any]) -> Task:
        """A new task (editors)."""
        caller = principal.require(USE)
        with self._uow:
            now = self._clock.now()
            task = Task(project_id=project_id, created_at=now, updated_at=now, title=data["title"])
            _apply(task, data, now)
            self._access.add_task(caller, task, WRITE)
            self._events.publish(
                TaskCreated(
                    project_id=project_id, actor=caller.subject, task_id=task.id, title=task.title
                )
            )
        return task

    def get(self, principal: Principal, project_id: int, task_id: int) -> Task:
        """A task of a project the caller is a member of."""
        return self._access.task(principal.require(USE), project_id, task_id, READ)

    def page(
        self,
        principal: Principal,
        project_id: int,
        where: TaskFilter,
        sort: Sort,
        paging: PageRequest,
    ) -> Page[Task]:
        """A page of the project's tasks (by page number or keyset cursor).

        Every member may read (``READ`` is the least role), so the page query itself requires
        the caller's membership; only an empty page needs the role check that tells a
        non-member (404) from an empty list: one statement fewer for every other page.
        """
        caller = principal.require(USE)
        try:
            page = self._repository.tasks(project_id, where, sort, paging, member=caller.subject)
        except Problem:  # a cursor refused: a non-member still learns only the 404
            self._access.check(caller, project_id, READ)
            raise
        if not page.items:
            self._access.check(caller, project_id, READ)
        return page

    def update(
        self,
        principal: Principal,
        project_id: int,
        task_id: int,
        changes: dict[str, Any],
        expected: Precondition,
        *,
        replace: bool,
    ) -> Task:
        """Change a task (editors): PATCH changes the given fields, PUT replaces them all.

        ``expected`` is checked against the task as loaded; a commit racing this one fails
        the versioned UPDATE when the unit of work commits (the host answers 412 for both).
        """
        caller = principal.require(USE)
        with self._uow:
            task = self._access.task(caller, project_id, task_id, WRITE)
            expected.check(task)
            was_done = task.status == "done"
            now = self._clock.now()
            if replace:
                task.description, task.priority, task.due_date, task.assignee = "", 3, None, None
                task.labels, task.status = [], "open"
            _apply(task, changes, now)
            task.updated_at = now
            self._events.publish(
                TaskUpdated(
                    project_id=project_id,
                    actor=caller.subject,
                    task_id=task.id,
                    fields=tuple(sorted(changes)),
                )
            )
            if task.status == "done" and not was_done:
                self._events.publish(
                    TaskCompleted(project_id=project_id, actor=caller.subject, task_id=task.id)
                )
        return task

    def delete(
        self, principal: Principal, project_id: int, task_id: int, expected: Precondition
    ) -> None:
        """Delete a task (editors)."""
        caller = principal.require(USE)
        with self._uow:
            task = self._access.task(caller, project_id, task_id, WRITE)
            expected.check(task)
            self._repository.delete(task)
            self._events.publish(
                TaskDeleted(project_id=project_id, actor=caller.subject, task_id=task_id)
            )

    def activity(self, principal: Principal, project_id: int) -> Sequence[Activity]:
        """The project's latest activity (``ACTIVITY_LIMIT`` entries)."""
        self._access.check(principal.require(USE), project_id, READ)
        return self._repository.activity(project_id, self._settings.ACTIVITY_LIMIT)

    def purge_done(self, older_than: timedelta) -> int:
        """Delete tasks done longer ago than ``older_than``.

        Each deletion publishes :class:`TaskDeleted` (actor ``system``), as through the API.
        """
        now = self._clock.now()
        with self._uow:
            purged = self._repository.purge_done(now - older_than)
            for project_id, task_id in purged:
                self._events.publish(
                    TaskDeleted(project_id=project_id, actor=SYSTEM_ACTOR, task_id=task_id)
                )
        return len(purged)


def _apply(task: Task, data: dict[str, Any], now: datetime) -> None:
    for field in TASK_FIELDS:
        if field in data:
            setattr(task, field, data[field])
    if "labels" in data:
        task.labels = sorted(set(data["labels"]))
        task.label_index = "," + "".join(f"{label}," for label in task.labels)
    if task.status == "done" and task.completed_at is None:
        task.completed_at = now
    elif task.status != "done":
        task.completed_at = None
