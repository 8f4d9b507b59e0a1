"""The only place the tasks plugin builds queries."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from injector import inject
from sqlalchemy import (
    BindParameter,
    Column,
    ColumnDefault,
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, make_transient_to_detached
from sqlalchemy.sql.dml import ReturningInsert

from plugins.tasks.models import Activity, Member, Project, Task
from powerstrip import Page, PageQuery, PageRequest, Problem, fetch_page, refuse_long_strings

PURGE_BATCH = 500  # ids per DELETE: far below every database's bound-parameter limit
SORTABLE: dict[str, InstrumentedAttribute[Any]] = {
    "id": Task.id,
    "created_at": Task.created_at,
    "updated_at": Task.updated_at,
    "priority": Task.priority,
    "title": Task.title,
    "status": Task.status,
}

# Built once: the statement of every tasks request (its compiled form is cached by SQLAlchemy,
# but building the expression costs about as much as running it on SQLite).
_MEMBERS = Member.__table__.c
_ROLE = select(_MEMBERS.role).where(
    _MEMBERS.project_id == bindparam("project_id"), _MEMBERS.principal == bindparam("principal")
)
# A membership and one task of its project (NULLs when the project has no such task).
_ROLE_AND_TASK = (
    select(Member.role, Task)
    .select_from(Member)
    .outerjoin(Task, and_(Task.id == bindparam("task_id"), Task.project_id == Member.project_id))
    .where(Member.project_id == bindparam("project_id"), Member.principal == bindparam("principal"))
)
# A Core INSERT: the ORM's unit of work (a flush) cost twice as much for a row nobody reads back.
# It fires no ORM event, so record() asks the SDK's check of string lengths itself. Inline: it
# asks for no generated value back (SQLAlchemy would add RETURNING id on PostgreSQL, then fetch
# and process the row: 31 function calls of an insert request's 3,724).
_ACTIVITY = cast(Table, Activity.__table__)
_INSERT_ACTIVITY = insert(_ACTIVITY).inline()
# A new task, inserted only if the caller holds one of the roles ``roles`` in its project: the
# role check and the INSERT in one statement (INSERT ... SELECT ... WHERE EXISTS), one round
# trip fewer than a check before the ORM's flush, and a Core INSERT, not a flush (as above).
# The EXISTS locks nothing: a role removed after it and before the commit does not undo the
# task, as it did not after a check before the INSERT.
_TASKS = cast(Table, Task.__table__)
_NEW_TASK = [column for column in _TASKS.c if not column.primary_key]


@functools.lru_cache(maxsize=8)  # one per role a permission needs (access.AT_LEAST)
def _insert_task_as(roles: tuple[str, ...]) -> ReturningInsert[int]:
    """A new task's INSERT if the member holds one of ``roles`` in its project, built once per
    ``roles``: they are the statement's own values, each its own parameter. An expanding
    ``IN`` parameter would have SQLAlchemy render the list into the SQL again on every run."""
    allowed: list[BindParameter[str]] = [
        bindparam(f"role_{index}", role) for index, role in enumerate(roles)
    ]
    return (
        insert(_TASKS)
        .from_select(
            [column.name for column in _NEW_TASK],
            select(*(bindparam(column.name, type_=column.type) for column in _NEW_TASK)).where(
                select(_MEMBERS.role)
                .where(
                    _MEMBERS.project_id == bindparam("project_id"),
                    _MEMBERS.principal == bindparam("member"),
                    _MEMBERS.role.in_(allowed),
                )
                .exists()
            ),
        )
        .returning(_TASKS.c.id)
    )


def _model_default(column: Column[Any]) -> Callable[[], Any]:
    """A new row's value for ``column`` when none is given (or None, as a flush reads None):
    its Python-side default, a callable's answer new for every row, else None. Any other
    default (a SQL expression, a server default) the INSERT would not apply: refused."""
    default = column.default
    if column.server_default is None:
        if default is None:
            return lambda: None
        if isinstance(default, ColumnDefault) and (default.is_scalar or default.is_callable):
            arg = default.arg
            return (lambda: arg(None)) if default.is_callable else (lambda: arg)
    raise TypeError(f"{column}: a new task's INSERT applies only a Python value or callable")


_NEW_TASK_DEFAULTS = [(column, _model_default(column)) for column in _NEW_TASK]


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What a task list is narrowed to."""

    status: str | None = None
    assignee: str | None = None
    label: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    text: str | None = None

    def values(self) -> dict[str, Any]:
        """The filters given, as the list query's parameters (see ``_task_pages``)."""
        values: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("status", "assignee", "due_before", "due_after")
            if getattr(self, name)
        }
        if self.label:
            values["label"] = _containing(f",{self.label},")
        if self.text:
            values["text"] = _containing(self.text.lower())
        return values


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

    def order(self) -> list[ColumnElement[Any]]:
        """ORDER BY of this sort: the field, then ``id`` in the same direction."""
        column = SORTABLE[self.field]
        if self.descending:
            return [column.desc(), Task.id.desc()]
        return [column.asc(), Task.id.asc()]


@functools.lru_cache(maxsize=2048)  # 2^6 filter sets x membership x 12 sorts: 1,536 shapes
def _task_pages(given: frozenset[str], sort: Sort) -> PageQuery[Task]:
    """The task list for one shape of request (which filters ``given``, the sort), built
    once; each request passes its values (``TaskFilter.values``)."""
    query = select(Task).where(Task.project_id == bindparam("project_id"))
    if "status" in given:
        query = query.where(Task.status == bindparam("status"))
    if "assignee" in given:
        query = query.where(Task.assignee == bindparam("assignee"))
    if "label" in given:
        query = query.where(Task.label_index.like(bindparam("label"), escape=_ESCAPE))
    if "due_before" in given:
        query = query.where(Task.due_date < bindparam("due_before"))
    if "due_after" in given:
        query = query.where(Task.due_date > bindparam("due_after"))
    if "text" in given:
        text: BindParameter[str] = bindparam("text")
        query = query.where(
            or_(
                func.lower(Task.title).like(text, escape=_ESCAPE),
                func.lower(Task.description).like(text, escape=_ESCAPE),
            )
        )
    if "member" in given:
        membership = select(_MEMBERS.role).where(
            _MEMBERS.project_id == bindparam("project_id"),
            _MEMBERS.principal == bindparam("member"),
        )
        query = query.where(membership.exists())
    return PageQuery(query, order=sort.order())


_ESCAPE = "/"


def _containing(text: str) -> str:
    """A LIKE pattern (escaped with ``_ESCAPE``) matching ``text`` anywhere, its ``%`` and
    ``_`` literal: what SQLAlchemy's ``contains(text, autoescape=True)`` sends."""
    for special in (_ESCAPE, "%", "_"):  # the escape character itself first
        text = text.replace(special, _ESCAPE + special)
    return f"%{text}%"


class TasksRepository:
    """Projects, members, tasks and activity in the request's session."""

    @inject
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: object) -> None:
        """Stage a new row and give it its id."""
        self.session.add(row)
        self.session.flush()

    def add_task_as(self, task: Task, member: str, roles: tuple[str, ...]) -> bool:
        """Insert ``task`` (every column set, ``version`` 1) if ``member`` holds one of
        ``roles`` in its project, in one statement, and give it its id; False (nothing
        written) otherwise. A string longer than its column is a 422 problem, as the SDK
        makes it for a model.

        The task is left detached, with its key (its identity, for its ETag) and every value:
        outside the session, a rollback of the unit of work has nothing of it to undo.
        """
        given = inspect(task).dict  # the attributes set on the new object
        values: dict[str, Any] = {}
        for column, default in _NEW_TASK_DEFAULTS:
            value = given.get(column.key)
            if value is None:  # the model's default, which the response shows too
                value = default()
                setattr(task, column.key, value)
            values[column.name] = value
        task.version = values["version"] = 1  # a new row's, as the ORM's first flush sets it
        refuse_long_strings(_TASKS, values)
        values["member"] = member
        new_id = self.session.scalar(_insert_task_as(roles), values)
        if new_id is None:
            return False
        task.id = new_id
        make_transient_to_detached(task)
        return True

    def delete(self, row: object) -> None:
        """Delete a row."""
        self.session.delete(row)
        self.session.flush()

    def role(self, project_id: int, principal: str) -> str | None:
        """A principal's role in a project; None when not a member (or no such project: a
        membership's project exists, its key cascades)."""
        role: str | None = self.session.scalar(
            _ROLE, {"project_id": project_id, "principal": principal}
        )
        return role

    def role_and_task(
        self, project_id: int, task_id: int, principal: str
    ) -> tuple[str, Task | None] | None:
        """A principal's role in a project and the project's task ``task_id`` (None if it has
        no such task), in one query; None when not a member."""
        row = self.session.execute(
            _ROLE_AND_TASK,
            {"project_id": project_id, "task_id": task_id, "principal": principal},
        ).first()
        return None if row is None else (row[0], row[1])

    def project_with_role(self, project_id: int, principal: str) -> tuple[Project, str] | None:
        """A project and a principal's role in it, in one query; None when not a member."""
        row = self.session.execute(
            select(Project, Member.role)
            .join(
                Member,
                and_(Member.project_id == Project.id, Member.principal == principal),
            )
            .where(Project.id == project_id)
        ).first()
        return None if row is None else (row[0], row[1])

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

    def projects_of(self, principal: str, paging: PageRequest) -> Page[Project]:
        """A page of the projects a principal is a member of, oldest first."""
        query = (
            select(Project)
            .join(Member, Member.project_id == Project.id)
            .where(Member.principal == principal)
        )
        return fetch_page(self.session, query, paging, order=[Project.id.asc()])

    def tasks(
        self,
        project_id: int,
        where: TaskFilter,
        sort: Sort,
        paging: PageRequest,
        *,
        member: str | None = None,
    ) -> Page[Task]:
        """A page of a project's tasks: by page number or after a cursor. With ``member``, the
        query itself requires that principal's membership: no rows for a non-member."""
        values = where.values()
        values["project_id"] = project_id
        if member is not None:
            values["member"] = member
        pages = _task_pages(frozenset(values), sort)
        return pages.fetch(self.session, paging, values)

    def record(
        self,
        *,
        project_id: int,
        kind: str,
        actor: str,
        detail: dict[str, Any],
        created_at: datetime,
    ) -> None:
        """Insert an activity entry: one INSERT of its own, no ORM unit of work (nothing reads
        the entry back in the request that writes it). A string longer than its column is a 422
        problem, as the SDK makes it for a model."""
        values: dict[str, Any] = {
            "project_id": project_id,
            "kind": kind,
            "actor": actor,
            "detail": detail,
            "created_at": created_at,
        }
        refuse_long_strings(_ACTIVITY, values)
        self.session.execute(_INSERT_ACTIVITY, values)

    def activity(self, project_id: int, limit: int) -> Sequence[Activity]:
        """A project's latest activity, newest first."""
        return self.session.scalars(
            select(Activity)
            .where(Activity.project_id == project_id)
            .order_by(Activity.id.desc())
            .limit(limit)
        ).all()

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
