"""Domain events of the tasks plugin, published after the change commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TasksEvent:
    """Base of every tasks event: which project, who did it, what changed."""

    project_id: int
    actor: str
    detail: dict[str, Any] = field(default_factory=dict)
    kind = "tasks.event"


@dataclass(frozen=True, slots=True)
class ProjectCreated(TasksEvent):
    kind = "project.created"


@dataclass(frozen=True, slots=True)
class ProjectUpdated(TasksEvent):
    kind = "project.updated"


@dataclass(frozen=True, slots=True)
class MemberAdded(TasksEvent):
    kind = "member.added"


@dataclass(frozen=True, slots=True)
class MemberRemoved(TasksEvent):
    kind = "member.removed"


@dataclass(frozen=True, slots=True)
class TaskCreated(TasksEvent):
    kind = "task.created"


@dataclass(frozen=True, slots=True)
class TaskUpdated(TasksEvent):
    kind = "task.updated"


@dataclass(frozen=True, slots=True)
class TaskCompleted(TasksEvent):
    kind = "task.completed"


@dataclass(frozen=True, slots=True)
class TaskDeleted(TasksEvent):
    kind = "task.deleted"
