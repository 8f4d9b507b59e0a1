"""Tables of the tasks plugin. Principal ids are opaque strings: no foreign key into accounts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from powerstrip import Model, UtcDateTime, Versioned


class Project(Versioned, Model):
    """A project: its members see its tasks."""

    __tablename__ = "tasks_projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Member(Model):
    """A principal's role in a project: viewer, editor or owner."""

    __tablename__ = "tasks_members"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("tasks_projects.id", ondelete="CASCADE"), primary_key=True
    )
    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Task(Versioned, Model):
    """A task of a project."""

    __tablename__ = "tasks_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("tasks_projects.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    priority: Mapped[int] = mapped_column(Integer, default=3)
    due_date: Mapped[date | None] = mapped_column(Date)
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    # ",a,b," kept beside labels: a portable "has label" filter on SQLite and PostgreSQL.
    label_index: Mapped[str] = mapped_column(String(1000), default=",")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


# A project's tasks in id order: a keyset page in the default order reads its rows off this
# index, whatever else the table holds; it serves every look-up by project too.
Index("ix_tasks_tasks_project_id_id", Task.project_id, Task.id)


class Activity(Model):
    """One entry of a project's activity feed, written in the change's transaction."""

    __tablename__ = "tasks_activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(index=True)  # survives the project
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
