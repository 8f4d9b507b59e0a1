"""Tasks of a project: create, read, page, change, delete, purge; the activity feed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from injector import inject

from plugins.tasks.access import READ, USE, WRITE, Access, check_if_match, flush_or_412
from plugins.tasks.contracts import (
    SYSTEM_ACTOR,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskUpdated,
)
from plugins.tasks.idempotency import Created, Idempotency
from plugins.tasks.models import Activity, Task
from plugins.tasks.repository import Sort, TaskFilter, TasksRepository, decode_cursor, encode_cursor
from plugins.tasks.settings import TasksSettings
from powerstrip import Clock, EventBus, Principal, Problem, UnitOfWork

TASK_FIELDS = ("title", "description", "status", "priority", "due_date", "assignee", "labels")


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks, by page number or by cursor."""

    items: Sequence[Task]
    total: int | None
    next_cursor: str | None


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
        idempotency: Idempotency,
        settings: TasksSettings,
    ) -> None:
        self._repository = repository
        self._access = access
        self._uow = uow
        self._events = events
        self._clock = clock
        self._idempotency = idempotency
        self._settings = settings

    def create(
        self,
        principal: Principal,
        project_id: int,
        data: dict[str, Any],
        key: str | None,
        dump: Callable[[Task], dict[str, Any]],
    ) -> Created:
        """A new task (editors); replayed for a repeated Idempotency-Key."""
        caller = principal.require(USE)
        with self._uow:
            self._access.project(caller, project_id, WRITE)
            replay = self._idempotency.replay(caller, key, {"project": project_id, **data})
            if replay is not None:
                return replay
            now = self._clock.now()
            task = Task(project_id=project_id, created_at=now, updated_at=now, title=data["title"])
            _apply(task, data, now)
            self._repository.add(task)
            created = self._idempotency.remember(
                caller, key, {"project": project_id, **data}, 201, dump(task)
            )
            self._events.publish(
                TaskCreated(
                    project_id=project_id, actor=caller.subject, task_id=task.id, title=task.title
                )
            )
        return created

    def get(self, principal: Principal, project_id: int, task_id: int) -> Task:
        """A task of a project the caller is a member of."""
        self._access.project(principal.require(USE), project_id, READ)
        return self._found(project_id, task_id)

    def page(
        self,
        principal: Principal,
        project_id: int,
        where: TaskFilter,
        sort: Sort,
        *,
        page: int,
        size: int,
        cursor: str | None,
    ) -> TaskPage:
        """Tasks by page number, or after a cursor (``start`` for the first keyset page)."""
        self._access.project(principal.require(USE), project_id, READ)
        size = min(size, self._settings.MAX_PAGE_SIZE)
        if cursor is None:
            rows, total = self._repository.tasks_page(
                project_id, where, sort, (page - 1) * size, size
            )
            return TaskPage(rows, total, None)
        after = None if cursor == "start" else decode_cursor(cursor, sort)
        rows = self._repository.tasks_after(project_id, where, sort, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return TaskPage(rows, None, encode_cursor(sort, rows[-1]) if more and rows else None)

    def update(
        self,
        principal: Principal,
        project_id: int,
        task_id: int,
        changes: dict[str, Any],
        if_match: str | None,
        *,
        replace: bool,
    ) -> Task:
        """Change a task (editors): PATCH changes the given fields, PUT replaces them all."""
        caller = principal.require(USE)
        with self._uow:
            self._access.project(caller, project_id, WRITE)
            task = self._found(project_id, task_id)
            check_if_match(if_match, task)
            was_done = task.status == "done"
            now = self._clock.now()
            if replace:
                task.description, task.priority, task.due_date, task.assignee = "", 3, None, None
                task.labels, task.status = [], "open"
            _apply(task, changes, now)
            task.updated_at = now
            flush_or_412(self._repository)
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
        self, principal: Principal, project_id: int, task_id: int, if_match: str | None
    ) -> None:
        """Delete a task (editors)."""
        caller = principal.require(USE)
        with self._uow:
            self._access.project(caller, project_id, WRITE)
            task = self._found(project_id, task_id)
            check_if_match(if_match, task)
            self._repository.delete(task)
            self._events.publish(
                TaskDeleted(project_id=project_id, actor=caller.subject, task_id=task_id)
            )

    def activity(
        self, principal: Principal, project_id: int, limit: int = 50
    ) -> Sequence[Activity]:
        """The project's latest activity."""
        self._access.project(principal.require(USE), project_id, READ)
        return self._repository.activity(project_id, limit)

    def purge_done(self, older_than: timedelta) -> int:
        """Delete tasks done longer ago than ``older_than``; forget old idempotency keys.

        Each deletion publishes :class:`TaskDeleted` (actor ``system``), as through the API.
        """
        now = self._clock.now()
        with self._uow:
            purged = self._repository.purge_done(now - older_than)
            self._repository.purge_idempotency_keys(
                now - timedelta(hours=self._settings.IDEMPOTENCY_KEY_HOURS)
            )
            for project_id, task_id in purged:
                self._events.publish(
                    TaskDeleted(project_id=project_id, actor=SYSTEM_ACTOR, task_id=task_id)
                )
        return len(purged)

    def _found(self, project_id: int, task_id: int) -> Task:
        task = self._repository.task(project_id, task_id)
        if task is None:
            raise Problem(404, "No such task.")
        return task


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
