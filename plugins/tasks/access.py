"""Who may do what in a project, and the checks every write shares (ETags, stale writes)."""

from __future__ import annotations

from injector import inject
from sqlalchemy.orm.exc import StaleDataError

from plugins.tasks.models import Project, Task
from plugins.tasks.repository import TasksRepository
from powerstrip import Caller, Problem

USE = "tasks:use"
ROLES = {"viewer": 1, "editor": 2, "owner": 3}
READ, WRITE, MANAGE = "viewer", "editor", "owner"


def etag(row: Project | Task) -> str:
    """The strong ETag of a project or task: changes with every committed update."""
    kind = "project" if isinstance(row, Project) else "task"
    return f'"{kind}-{row.id}-v{row.version}"'


class Access:
    """Membership checks: a non-member gets 404 (existence does not leak), too low a role 403."""

    @inject
    def __init__(self, repository: TasksRepository) -> None:
        self._repository = repository

    def project(self, caller: Caller, project_id: int, need: str) -> Project:
        """The project, if ``caller`` holds at least role ``need`` in it."""
        project = self._repository.project(project_id)
        member = self._repository.member(project_id, caller.subject)
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


def flush_or_412(repository: TasksRepository) -> None:
    """Write pending changes; a concurrent commit in between is a 412 problem."""
    try:
        repository.session.flush()
    except StaleDataError:
        # Someone committed a change between our read and our write: their ETag is newer.
        raise Problem(412, "The resource changed since you read it; read it again.") from None


class Membership:
    """The published :class:`~plugins.tasks.contracts.ProjectMembership` query."""

    @inject
    def __init__(self, repository: TasksRepository) -> None:
        self._repository = repository

    def is_member(self, principal: str, project_id: int) -> bool:
        """Whether ``principal`` is a member of the project (any role)."""
        return self._repository.member(project_id, principal) is not None

    def members(self, project_id: int) -> frozenset[str]:
        """The principal ids of the project's members."""
        return frozenset(member.principal for member in self._repository.members(project_id))
