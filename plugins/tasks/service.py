"""Business rules of the tasks plugin: who may do what, ETags, idempotent creates, events."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from injector import inject
from sqlalchemy.orm.exc import StaleDataError

from app import Clock, EventBus, Principal, Problem, UnitOfWork
from plugins.tasks.events import (
    MemberAdded,
    MemberRemoved,
    ProjectCreated,
    ProjectUpdated,
    TaskCompleted,
    TaskCreated,
    TaskDeleted,
    TaskUpdated,
)
from plugins.tasks.models import IdempotencyKey, Member, Project, Task
from plugins.tasks.repository import Sort, TaskFilter, TasksRepository, decode_cursor, encode_cursor
from plugins.tasks.settings import TasksSettings

ROLES = {"viewer": 1, "editor": 2, "owner": 3}
READ, WRITE, MANAGE = "viewer", "editor", "owner"
TASK_FIELDS = ("title", "description", "status", "priority", "due_date", "assignee", "labels")


def etag(row: Project | Task) -> str:
    """The strong ETag of a project or task: changes with every committed update."""
    kind = "project" if isinstance(row, Project) else "task"
    return f'"{kind}-{row.id}-v{row.version}"'


def request_hash(body: dict[str, Any]) -> str:
    """A stable digest of a validated request body (for Idempotency-Key)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer: the status and the serialized body (first or replayed)."""

    status: int
    body: dict[str, Any]
    replayed: bool


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks, by page number or by cursor."""

    items: Sequence[Task]
    total: int | None
    next_cursor: str | None


class Access:
    """Membership checks: a non-member gets 404 (existence does not leak), too low a role 403."""

    @inject
    def __init__(self, repository: TasksRepository) -> None:
        self._repository = repository

    def project(self, principal: Principal, project_id: int, need: str) -> Project:
        """The project, if ``principal`` holds at least role ``need`` in it."""
        principal.require("tasks:use")
        project = self._repository.project(project_id)
        member = self._repository.member(project_id, principal.subject or "")
        if project is None or member is None:
            raise Problem(404, "No such project.")
        if ROLES[member.role] < ROLES[need]:
            raise Problem(403, f"This needs the {need} role in the project.")
        return project


def check_if_match(if_match: str | None, row: Project | Task) -> None:
    """428 without If-Match, 412 when it names another version."""
    if not if_match:
        raise Problem(428, "Send If-Match with the ETag you last read.")
    tags = {tag.strip() for tag in if_match.split(",")}
    if "*" not in tags and etag(row) not in tags:
        raise Problem(412, "The resource changed since you read it; read it again.")


class ProjectService:
    """Projects and their membership."""

    @inject
    def __init__(
        self,
        repository: TasksRepository,
        access: Access,
        uow: UnitOfWork,
        events: EventBus,
        clock: Clock,
        idempotency: Idempotency,
    ) -> None:
        self._repository = repository
        self._access = access
        self._uow = uow
        self._events = events
        self._clock = clock
        self._idempotency = idempotency

    def create(
        self,
        principal: Principal,
        data: dict[str, Any],
        key: str | None,
        dump: Callable[[Project], dict[str, Any]],
    ) -> Created:
        """A new project owned by the caller (replayed for a repeated Idempotency-Key)."""
        principal.require("tasks:use")
        with self._uow:
            replay = self._idempotency.replay(principal, key, data)
            if replay is not None:
                return replay
            now = self._clock.now()
            project = Project(
                name=data["name"],
                description=data.get("description", ""),
                owner=principal.subject,
                created_at=now,
                updated_at=now,
            )
            self._repository.add(project)
            self._repository.add(
                Member(
                    project_id=project.id, principal=principal.subject, role="owner", added_at=now
                )
            )
            created = self._idempotency.remember(principal, key, data, 201, dump(project))
            self._events.publish(
                ProjectCreated(project.id, principal.subject or "", {"name": project.name})
            )
        return created

    def list(self, principal: Principal, page: int, size: int) -> tuple[Sequence[Project], int]:
        """The caller's projects."""
        principal.require("tasks:use")
        return self._repository.projects_of(principal.subject or "", (page - 1) * size, size)

    def get(self, principal: Principal, project_id: int) -> Project:
        """A project the caller is a member of."""
        return self._access.project(principal, project_id, READ)

    def update(
        self, principal: Principal, project_id: int, changes: dict[str, Any], if_match: str | None
    ) -> Project:
        """Rename or describe a project (owners)."""
        with self._uow:
            project = self._access.project(principal, project_id, MANAGE)
            check_if_match(if_match, project)
            for field in ("name", "description"):
                if field in changes:
                    setattr(project, field, changes[field])
            project.updated_at = self._clock.now()
            _flush_or_412(self._repository)
            self._events.publish(ProjectUpdated(project.id, principal.subject or "", dict(changes)))
        return project

    def delete(self, principal: Principal, project_id: int, if_match: str | None) -> None:
        """Delete a project and its tasks (owners)."""
        with self._uow:
            project = self._access.project(principal, project_id, MANAGE)
            check_if_match(if_match, project)
            self._repository.delete(project)

    def members(self, principal: Principal, project_id: int) -> Sequence[Member]:
        """A project's members (any member may look)."""
        self._access.project(principal, project_id, READ)
        return self._repository.members(project_id)

    def set_member(self, principal: Principal, project_id: int, who: str, role: str) -> Member:
        """Add a member or change its role (owners)."""
        with self._uow:
            self._access.project(principal, project_id, MANAGE)
            member = self._repository.member(project_id, who)
            if member is None:
                member = Member(
                    project_id=project_id, principal=who, role=role, added_at=self._clock.now()
                )
                self._repository.add(member)
            else:
                self._keep_an_owner(project_id, member, role)
                member.role = role
            self._events.publish(
                MemberAdded(project_id, principal.subject or "", {"principal": who, "role": role})
            )
        return member

    def remove_member(self, principal: Principal, project_id: int, who: str) -> None:
        """Remove a member (owners); the last owner stays."""
        with self._uow:
            self._access.project(principal, project_id, MANAGE)
            member = self._repository.member(project_id, who)
            if member is None:
                raise Problem(404, "No such member.")
            self._keep_an_owner(project_id, member, None)
            self._repository.delete(member)
            self._events.publish(
                MemberRemoved(project_id, principal.subject or "", {"principal": who})
            )

    def _keep_an_owner(self, project_id: int, member: Member, new_role: str | None) -> None:
        if member.role != "owner" or new_role == "owner":
            return
        owners = [m for m in self._repository.members(project_id) if m.role == "owner"]
        if len(owners) == 1:
            raise Problem(409, "A project keeps at least one owner.")


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
        with self._uow:
            self._access.project(principal, project_id, WRITE)
            replay = self._idempotency.replay(principal, key, {"project": project_id, **data})
            if replay is not None:
                return replay
            now = self._clock.now()
            task = Task(project_id=project_id, created_at=now, updated_at=now, title=data["title"])
            _apply(task, data, now)
            self._repository.add(task)
            created = self._idempotency.remember(
                principal, key, {"project": project_id, **data}, 201, dump(task)
            )
            self._events.publish(
                TaskCreated(
                    project_id, principal.subject or "", {"task": task.id, "title": task.title}
                )
            )
        return created

    def get(self, principal: Principal, project_id: int, task_id: int) -> Task:
        """A task of a project the caller is a member of."""
        self._access.project(principal, project_id, READ)
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
        self._access.project(principal, project_id, READ)
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
        with self._uow:
            self._access.project(principal, project_id, WRITE)
            task = self._found(project_id, task_id)
            check_if_match(if_match, task)
            was_done = task.status == "done"
            now = self._clock.now()
            if replace:
                task.description, task.priority, task.due_date, task.assignee = "", 3, None, None
                task.labels, task.status = [], "open"
            _apply(task, changes, now)
            task.updated_at = now
            _flush_or_412(self._repository)
            actor = principal.subject or ""
            self._events.publish(
                TaskUpdated(project_id, actor, {"task": task.id, "fields": sorted(changes)})
            )
            if task.status == "done" and not was_done:
                self._events.publish(TaskCompleted(project_id, actor, {"task": task.id}))
        return task

    def delete(
        self, principal: Principal, project_id: int, task_id: int, if_match: str | None
    ) -> None:
        """Delete a task (editors)."""
        with self._uow:
            self._access.project(principal, project_id, WRITE)
            task = self._found(project_id, task_id)
            check_if_match(if_match, task)
            self._repository.delete(task)
            self._events.publish(
                TaskDeleted(project_id, principal.subject or "", {"task": task_id})
            )

    def activity(self, principal: Principal, project_id: int, limit: int = 50) -> Sequence[Any]:
        """The project's latest activity."""
        self._access.project(principal, project_id, READ)
        return self._repository.activity(project_id, limit)

    def purge_done(self, older_than: timedelta) -> int:
        """Delete tasks done longer ago than ``older_than``; forget old idempotency keys."""
        now = self._clock.now()
        with self._uow:
            count = self._repository.purge_done(now - older_than)
            self._repository.purge_idempotency_keys(
                now - timedelta(hours=self._settings.IDEMPOTENCY_KEY_HOURS)
            )
        return count

    def _found(self, project_id: int, task_id: int) -> Task:
        task = self._repository.task(project_id, task_id)
        if task is None:
            raise Problem(404, "No such task.")
        return task


class Idempotency:
    """Replays the first answer to a POST repeated with the same Idempotency-Key."""

    @inject
    def __init__(self, repository: TasksRepository, clock: Clock, settings: TasksSettings) -> None:
        self._repository = repository
        self._clock = clock
        self._settings = settings

    def replay(self, principal: Principal, key: str | None, body: dict[str, Any]) -> Created | None:
        """The stored answer for ``key``; 422 if the key came with another body."""
        if key is None:
            return None
        stored = self._repository.idempotency_key(principal.subject or "", key)
        if stored is None:
            return None
        expires = stored.created_at + timedelta(hours=self._settings.IDEMPOTENCY_KEY_HOURS)
        if expires <= self._clock.now():
            self._repository.delete(stored)
            return None
        if stored.request_hash != request_hash(body):
            raise Problem(
                422,
                "This Idempotency-Key was used with another request body.",
                errors={"Idempotency-Key": ["Reused with a different body."]},
            )
        return Created(stored.status, stored.body, replayed=True)

    def remember(
        self,
        principal: Principal,
        key: str | None,
        body: dict[str, Any],
        status: int,
        answer: dict[str, Any],
    ) -> Created:
        """Store the first answer for ``key`` (in the same transaction as the create)."""
        if key is not None:
            self._repository.add(
                IdempotencyKey(
                    principal=principal.subject or "",
                    key=key,
                    request_hash=request_hash(body),
                    status=status,
                    body=answer,
                    created_at=self._clock.now(),
                )
            )
        return Created(status, answer, replayed=False)


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


def _flush_or_412(repository: TasksRepository) -> None:
    try:
        repository.session.flush()
    except StaleDataError:
        # Someone committed a change between our read and our write: their ETag is newer.
        raise Problem(412, "The resource changed since you read it; read it again.") from None
