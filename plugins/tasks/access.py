"""Who may do what in a project: roles, and 404 for non-members."""

from __future__ import annotations

from injector import inject

from plugins.tasks.models import Project, Task
from plugins.tasks.repository import TasksRepository
from powerstrip import Caller, Problem

USE = "tasks:use"
ROLES = {"viewer": 1, "editor": 2, "owner": 3}
AT_LEAST = {need: tuple(r for r, rank in ROLES.items() if rank >= ROLES[need]) for need in ROLES}
READ, WRITE, MANAGE = "viewer", "editor", "owner"  # READ: the least role (every member reads)
NO_SUCH_PROJECT = "No such project."
NO_SUCH_TASK = "No such task."
MEMBERSHIP_CHANGED = "Your role in the project changed meanwhile; try again."


class Access:
    """Membership checks: a non-member gets 404 (existence does not leak), too low a role 403."""

    @inject
    def __init__(self, repository: TasksRepository) -> None:
        self._repository = repository

    def check(self, caller: Caller, project_id: int, need: str) -> None:
        """Pass if ``caller`` holds at least role ``need`` in the project (one small query)."""
        _require(self._repository.role(project_id, caller.subject), need)

    def add_task(self, caller: Caller, task: Task, need: str) -> None:
        """Insert ``task`` if ``caller`` holds at least role ``need`` in its project (the check
        inside the INSERT); else 404 for a non-member, 403 for too low a role."""
        roles = AT_LEAST[need]
        if self._repository.add_task_as(task, caller.subject, roles):
            return
        self.check(caller, task.project_id, need)  # 404 or 403, as a check before would
        # A member after all, the role granted between the two statements: once more.
        if not self._repository.add_task_as(task, caller.subject, roles):
            raise Problem(409, MEMBERSHIP_CHANGED)  # and taken away again

    def project(self, caller: Caller, project_id: int, need: str) -> Project:
        """The project, if ``caller`` holds at least role ``need`` in it (one query)."""
        found = self._repository.project_with_role(project_id, caller.subject)
        if found is None:
            raise Problem(404, NO_SUCH_PROJECT)
        _require(found[1], need)
        return found[0]

    def task(self, caller: Caller, project_id: int, task_id: int, need: str) -> Task:
        """The project's task ``task_id``, if ``caller`` holds at least role ``need`` in the
        project (one query): 404 for a non-member, then 403, then 404 for no such task."""
        found = self._repository.role_and_task(project_id, task_id, caller.subject)
        if found is None:
            raise Problem(404, NO_SUCH_PROJECT)
        role, task = found
        _require(role, need)
        if task is None:
            raise Problem(404, NO_SUCH_TASK)
        return task


def _require(role: str | None, need: str) -> None:
    if role is None:
        raise Problem(404, NO_SUCH_PROJECT)
    if ROLES[role] < ROLES[need]:
        raise Problem(403, f"This needs the {need} role in the project.")


class Membership:
    """The published :class:`~plugins.tasks.contracts.ProjectMembership` query."""

    @inject
    def __init__(self, repository: TasksRepository) -> None:
        self._repository = repository

    def is_member(self, principal: str, project_id: int) -> bool:
        """Whether ``principal`` is a member of the project (any role)."""
        return self._repository.role(project_id, principal) is not None

    def members(self, project_id: int) -> frozenset[str]:
        """The principal ids of the project's members."""
        return frozenset(member.principal for member in self._repository.members(project_id))
