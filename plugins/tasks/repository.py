"""The only place the tasks plugin builds queries."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from injector import inject
from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from plugins.tasks.models import Activity, IdempotencyKey, Member, Project, Task
from powerstrip import Problem

PURGE_BATCH = 500  # ids per DELETE: far below every database's bound-parameter limit
SORTABLE: dict[str, InstrumentedAttribute[Any]] = {
    "id": Task.id,
    "created_at": Task.created_at,
    "updated_at": Task.updated_at,
    "priority": Task.priority,
    "title": Task.title,
    "status": Task.status,
}


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What a task list is narrowed to."""

    status: str | None = None
    assignee: str | None = None
    label: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Sort:
    """A whitelisted field and direction; ``id`` breaks ties so the order is stable."""

    field: str = "id"
    descending: bool = False

    @classmethod
    def parse(cls, value: str | None) -> Sort:
        """``priority`` or ``-priority``; unknown fields are a 422 problem."""
        if not value:
            return cls()
        name = value.removeprefix("-")
        if name not in SORTABLE:
            raise Problem(
                422,
                f"Cannot sort by {name!r}.",
                errors={
                    "sort": [
                        f"Use one of: {', '.join(sorted(SORTABLE))} (prefix - for descending)."
                    ]
                },
            )
        return cls(name, value.startswith("-"))


def encode_cursor(sort: Sort, task: Task) -> str:
    """An opaque cursor after ``task`` in ``sort`` order."""
    value = getattr(task, sort.field)
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps({"f": sort.field, "d": sort.descending, "v": value, "id": task.id})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[Any, int]:
    """(sort value, id) of a cursor made for ``sort``; a 422 problem otherwise."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["f"] != sort.field or data["d"] != sort.descending:
            raise ValueError("cursor of another sort")
        value = data["v"]
        if sort.field in ("created_at", "updated_at"):
            value = datetime.fromisoformat(value)
        return value, int(data["id"])
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
        raise Problem(
            422, "The cursor is invalid for this query.", errors={"cursor": ["Invalid."]}
        ) from None


class TasksRepository:
    """Projects, members, tasks, activity and idempotency keys in the request's session."""

    @inject
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: object) -> None:
        """Stage a new row and give it its id."""
        self.session.add(row)
        self.session.flush()

    def delete(self, row: object) -> None:
        """Delete a row."""
        self.session.delete(row)
        self.session.flush()

    def project(self, project_id: int) -> Project | None:
        """A project by id."""
        return self.session.get(Project, project_id)

    def member(self, project_id: int, principal: str) -> Member | None:
        """A principal's membership of a project."""
        return self.session.get(Member, (project_id, principal))

    def members(self, project_id: int) -> Sequence[Member]:
        """A project's members."""
        return self.session.scalars(
            select(Member)
            .where(Member.project_id == project_id)
            .order_by(Member.added_at, Member.principal)
        ).all()

    def projects_of(self, principal: str, offset: int, limit: int) -> tuple[Sequence[Project], int]:
        """The projects a principal is a member of, oldest first, and their count."""
        query = (
            select(Project)
            .join(Member, Member.project_id == Project.id)
            .where(Member.principal == principal)
        )
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Project.id).offset(offset).limit(limit)).all()
        return rows, total

    def task(self, project_id: int, task_id: int) -> Task | None:
        """A task of a project."""
        task = self.session.get(Task, task_id)
        return task if task is not None and task.project_id == project_id else None

    def _filtered(self, project_id: int, where: TaskFilter) -> Select[Task]:
        query = select(Task).where(Task.project_id == project_id)
        if where.status:
            query = query.where(Task.status == where.status)
        if where.assignee:
            query = query.where(Task.assignee == where.assignee)
        if where.label:
            query = query.where(Task.label_index.contains(f",{where.label},", autoescape=True))
        if where.due_before:
            query = query.where(Task.due_date < where.due_before)
        if where.due_after:
            query = query.where(Task.due_date > where.due_after)
        if where.text:
            pattern = where.text.lower()
            query = query.where(
                or_(
                    func.lower(Task.title).contains(pattern, autoescape=True),
                    func.lower(Task.description).contains(pattern, autoescape=True),
                )
            )
        return query

    def _ordered(self, query: Select[Task], sort: Sort) -> Select[Task]:
        column = SORTABLE[sort.field]
        if sort.descending:
            return query.order_by(column.desc(), Task.id.desc())
        return query.order_by(column.asc(), Task.id.asc())

    def tasks_page(
        self, project_id: int, where: TaskFilter, sort: Sort, offset: int, limit: int
    ) -> tuple[Sequence[Task], int]:
        """A page of a project's tasks and how many match in all."""
        query = self._filtered(project_id, where)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(self._ordered(query, sort).offset(offset).limit(limit)).all()
        return rows, total

    def tasks_after(
        self,
        project_id: int,
        where: TaskFilter,
        sort: Sort,
        after: tuple[Any, int] | None,
        limit: int,
    ) -> Sequence[Task]:
        """Up to ``limit`` tasks after the cursor position (keyset pagination)."""
        query = self._filtered(project_id, where)
        if after is not None:
            column = SORTABLE[sort.field]
            value, last_id = after
            if sort.descending:
                query = query.where(or_(column < value, and_(column == value, Task.id < last_id)))
            else:
                query = query.where(or_(column > value, and_(column == value, Task.id > last_id)))
        return self.session.scalars(self._ordered(query, sort).limit(limit)).all()

    def activity(self, project_id: int, limit: int) -> Sequence[Activity]:
        """A project's latest activity, newest first."""
        return self.session.scalars(
            select(Activity)
            .where(Activity.project_id == project_id)
            .order_by(Activity.id.desc())
            .limit(limit)
        ).all()

    def idempotency_key(self, principal: str, key: str) -> IdempotencyKey | None:
        """A stored first answer."""
        return self.session.get(IdempotencyKey, (principal, key))

    def purge_idempotency_keys(self, before: datetime) -> None:
        """Forget answers older than ``before``."""
        self.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < before))

    def purge_done(self, before: datetime) -> list[tuple[int, int]]:
        """Delete tasks done before ``before``; the (project id, task id) of each."""
        query = select(Task.project_id, Task.id).where(
            Task.status == "done", Task.completed_at < before
        )
        purged = [(project_id, task_id) for project_id, task_id in self.session.execute(query)]
        for start in range(0, len(purged), PURGE_BATCH):
            batch = [task_id for _, task_id in purged[start : start + PURGE_BATCH]]
            self.session.execute(delete(Task).where(Task.id.in_(batch)))
        return purged
