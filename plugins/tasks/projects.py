"""Projects and their membership: create, read, rename, delete, add and remove members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from injector import inject

from plugins.tasks.access import MANAGE, READ, USE, Access
from plugins.tasks.contracts import (
    MemberAdded,
    MemberRemoved,
    ProjectCreated,
    ProjectDeleted,
    ProjectUpdated,
)
from plugins.tasks.models import Member, Project
from plugins.tasks.repository import TasksRepository
from powerstrip import (
    Clock,
    Directory,
    EventBus,
    Page,
    PageRequest,
    Precondition,
    Principal,
    Problem,
    UnitOfWork,
)


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
        directory: Directory,
    ) -> None:
        self._repository = repository
        self._access = access
        self._uow = uow
        self._events = events
        self._clock = clock
        self._directory = directory

    def create(self, principal: Principal, data: dict[str, Any]) -> Project:
        """A new project owned by the caller."""
        caller = principal.require(USE)
        with self._uow:
            now = self._clock.now()
            project = Project(
                name=data["name"],
                description=data.get("description", ""),
                owner=caller.subject,
                created_at=now,
                updated_at=now,
            )
            self._repository.add(project)
            self._repository.add(
                Member(project_id=project.id, principal=caller.subject, role="owner", added_at=now)
            )
            self._events.publish(
                ProjectCreated(project_id=project.id, actor=caller.subject, name=project.name)
            )
        return project

    def list(self, principal: Principal, paging: PageRequest) -> Page[Project]:
        """A page of the caller's projects."""
        return self._repository.projects_of(principal.require(USE).subject, paging)

    def get(self, principal: Principal, project_id: int) -> Project:
        """A project the caller is a member of."""
        return self._access.project(principal.require(USE), project_id, READ)

    def update(
        self,
        principal: Principal,
        project_id: int,
        changes: dict[str, Any],
        expected: Precondition,
    ) -> Project:
        """Rename or describe a project (owners)."""
        caller = principal.require(USE)
        with self._uow:
            project = self._access.project(caller, project_id, MANAGE)
            expected.check(project)
            for field in ("name", "description"):
                if field in changes:
                    setattr(project, field, changes[field])
            project.updated_at = self._clock.now()
            self._events.publish(
                ProjectUpdated(project_id=project.id, actor=caller.subject, fields=tuple(changes))
            )
        return project

    def delete(self, principal: Principal, project_id: int, expected: Precondition) -> None:
        """Delete a project and its tasks (owners)."""
        caller = principal.require(USE)
        with self._uow:
            project = self._access.project(caller, project_id, MANAGE)
            expected.check(project)
            self._repository.delete(project)
            self._events.publish(ProjectDeleted(project_id=project_id, actor=caller.subject))

    def members(self, principal: Principal, project_id: int) -> Sequence[Member]:
        """A project's members (any member may look)."""
        self._access.check(principal.require(USE), project_id, READ)
        return self._repository.members(project_id)

    def set_member(self, principal: Principal, project_id: int, who: str, role: str) -> Member:
        """Add a member or change its role (owners); ``who`` must be an existing principal."""
        caller = principal.require(USE)
        with self._uow:
            self._access.check(caller, project_id, MANAGE)
            member = self._repository.member(project_id, who)
            if member is None:
                if not self._directory.exists(who):
                    raise Problem(
                        422,
                        f"No principal {who!r} exists.",
                        errors={"member": ["No such principal."]},
                    )
                member = Member(
                    project_id=project_id, principal=who, role=role, added_at=self._clock.now()
                )
                self._repository.add(member)
            else:
                self._keep_an_owner(project_id, member, role)
                member.role = role
            self._events.publish(
                MemberAdded(project_id=project_id, actor=caller.subject, principal=who, role=role)
            )
        return member

    def remove_member(self, principal: Principal, project_id: int, who: str) -> None:
        """Remove a member (owners); the last owner stays."""
        caller = principal.require(USE)
        with self._uow:
            self._access.check(caller, project_id, MANAGE)
            member = self._repository.member(project_id, who)
            if member is None:
                raise Problem(404, "No such member.")
            self._keep_an_owner(project_id, member, None)
            self._repository.delete(member)
            self._events.publish(
                MemberRemoved(project_id=project_id, actor=caller.subject, principal=who)
            )

    def _keep_an_owner(self, project_id: int, member: Member, new_role: str | None) -> None:
        if member.role != "owner" or new_role == "owner":
            return
        owners = [m for m in self._repository.members(project_id) if m.role == "owner"]
        if len(owners) == 1:
            raise Problem(409, "A project keeps at least one owner.")
