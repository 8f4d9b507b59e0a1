"""What the tasks plugin publishes for other plugins: its events and a membership query.

This module is the tasks plugin's public face; everything else in ``plugins.tasks`` is
private. Another plugin lists ``"tasks"`` in ``requires`` and imports only from here::

    from plugins.tasks.contracts import ProjectMembership, TaskCompleted

    def setup(context: PluginContext) -> None:
        context.events.subscribe(TaskCompleted, Notifier)  # a class of yours, injected

Events are delivered after the change committed (never for work that rolled back). Every
event carries the project and the actor (the principal id of whoever made the change, or
``"system"`` for a command such as ``flask tasks purge-done``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksEvent:
    """Base of every tasks event: subscribe to it to hear of every change.

    :param project_id: the project the change belongs to
    :param actor: the principal id that made the change (``"system"`` for commands)
    """

    kind: ClassVar[str] = "tasks.event"
    project_id: int
    actor: str

    def detail(self) -> dict[str, Any]:
        """The event's own fields (without project and actor), as JSON-ready values: what
        ``dataclasses.asdict`` gives, a tuple as a list. Plain values (text, numbers, a tuple
        of them) are taken as they are: ``asdict``'s deep copy of them cost 68 function calls
        of an insert request's 3,400."""
        detail: dict[str, Any] = {}
        for field in fields(self):
            name = field.name
            if name in _ENVELOPE:
                continue
            value = getattr(self, name)
            if type(value) is tuple and all(type(item) in _PLAIN for item in value):
                value = list(value)
            elif type(value) not in _PLAIN:  # a nested value: copied as asdict copies it
                values = asdict(self)
                del values["project_id"], values["actor"]
                return {key: list(v) if isinstance(v, tuple) else v for key, v in values.items()}
            detail[name] = value
        return detail


_ENVELOPE = frozenset({"project_id", "actor"})  # every event's; not its detail
_PLAIN = frozenset({str, int, float, bool, type(None)})  # values asdict() hands back as they are


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectCreated(TasksEvent):
    """A project was created; its creator is its first owner. :param name: its name"""

    kind: ClassVar[str] = "project.created"
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectUpdated(TasksEvent):
    """A project was renamed or described. :param fields: the names of the changed fields"""

    kind: ClassVar[str] = "project.updated"
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectDeleted(TasksEvent):
    """A project and all its tasks were deleted."""

    kind: ClassVar[str] = "project.deleted"


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberAdded(TasksEvent):
    """A principal joined a project, or its role changed.

    :param principal: the member's principal id
    :param role: ``viewer``, ``editor`` or ``owner``
    """

    kind: ClassVar[str] = "member.added"
    principal: str
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRemoved(TasksEvent):
    """A principal left a project. :param principal: the former member's principal id"""

    kind: ClassVar[str] = "member.removed"
    principal: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCreated(TasksEvent):
    """A task was created. :param task_id: its id :param title: its title"""

    kind: ClassVar[str] = "task.created"
    task_id: int
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskUpdated(TasksEvent):
    """A task changed. :param task_id: its id :param fields: the names of the fields sent"""

    kind: ClassVar[str] = "task.updated"
    task_id: int
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCompleted(TasksEvent):
    """A task's status became ``done`` (published after its :class:`TaskUpdated`)."""

    kind: ClassVar[str] = "task.completed"
    task_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDeleted(TasksEvent):
    """A task was deleted, through the API or by ``flask tasks purge-done``."""

    kind: ClassVar[str] = "task.deleted"
    task_id: int


@runtime_checkable
class ProjectMembership(Protocol):
    """Who belongs to which project (bound by the tasks plugin; ask for it by injection)."""

    def is_member(self, principal: str, project_id: int) -> bool:
        """Whether ``principal`` is a member of the project (any role): may see its events."""

    def members(self, project_id: int) -> frozenset[str]:
        """The principal ids of the project's members (empty for an unknown project)."""
