"""HTTP views of the tasks plugin: validate, call one service method, shape the response."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import url_for
from flask_smorest import Blueprint

from plugins.tasks.access import USE
from plugins.tasks.models import Activity, Member, Project, Task
from plugins.tasks.projects import ProjectService
from plugins.tasks.repository import Sort, TaskFilter
from plugins.tasks.schemas import (
    ActivitySchema,
    MemberInSchema,
    MemberSchema,
    ProjectInSchema,
    ProjectPatchSchema,
    ProjectSchema,
    TaskInSchema,
    TaskPatchSchema,
    TaskQuerySchema,
    TaskSchema,
)
from plugins.tasks.service import TaskService
from powerstrip import (
    Page,
    PageRequest,
    Precondition,
    Principal,
    conditional,
    idempotent,
    paginated,
    problem_responses,
    requires,
)

MAX_PAGE_SIZE = 100

blueprint = Blueprint("tasks", __name__, description="Projects, tasks and their activity")


@blueprint.route("/projects", methods=["POST"])
@blueprint.arguments(ProjectInSchema())
@blueprint.response(201, ProjectSchema)
@requires(USE)
@idempotent
@conditional
def create_project(
    body: dict[str, Any], projects: ProjectService, principal: Principal
) -> tuple[Project, dict[str, str]]:
    """Create a project; the caller becomes its owner."""
    created = projects.create(principal, body)
    return created, {"Location": url_for("tasks.project", project_id=created.id)}


@blueprint.route("/projects", methods=["GET"])
@blueprint.response(200, ProjectSchema(many=True))
@requires(USE)
@paginated(max_page_size=MAX_PAGE_SIZE)
def list_projects(
    projects: ProjectService, principal: Principal, paging: PageRequest
) -> Page[Project]:
    """The caller's projects, oldest first."""
    return projects.list(principal, paging)


@blueprint.route("/projects/<int:project_id>", methods=["GET"])
@blueprint.response(200, ProjectSchema)
@requires(USE)
@problem_responses(404)
@conditional
def project(project_id: int, projects: ProjectService, principal: Principal) -> Project:
    """A project (members only; others get 404)."""
    return projects.get(principal, project_id)


@blueprint.route("/projects/<int:project_id>", methods=["PATCH"])
@blueprint.arguments(ProjectPatchSchema())
@blueprint.response(200, ProjectSchema)
@requires(USE)
@problem_responses(404)
@conditional
def update_project(
    body: dict[str, Any],
    project_id: int,
    projects: ProjectService,
    principal: Principal,
    expected: Precondition,
) -> Project:
    """Rename or describe a project (owners; If-Match required)."""
    return projects.update(principal, project_id, body, expected)


@blueprint.route("/projects/<int:project_id>", methods=["DELETE"])
@blueprint.response(204)
@requires(USE)
@problem_responses(404)
@conditional
def delete_project(
    project_id: int, projects: ProjectService, principal: Principal, expected: Precondition
) -> None:
    """Delete a project and its tasks (owners; If-Match required)."""
    projects.delete(principal, project_id, expected)


@blueprint.route("/projects/<int:project_id>/members", methods=["GET"])
@blueprint.response(200, MemberSchema(many=True))
@requires(USE)
@problem_responses(404)
def members(project_id: int, projects: ProjectService, principal: Principal) -> Sequence[Member]:
    """A project's members."""
    return projects.members(principal, project_id)


@blueprint.route("/projects/<int:project_id>/members/<string:member>", methods=["PUT"])
@blueprint.arguments(MemberInSchema())
@blueprint.response(200, MemberSchema)
@requires(USE)
@problem_responses(404, 409)
def set_member(
    body: dict[str, Any],
    project_id: int,
    member: str,
    projects: ProjectService,
    principal: Principal,
) -> Member:
    """Add a member with a role, or change its role (owners)."""
    return projects.set_member(principal, project_id, member, body["role"])


@blueprint.route("/projects/<int:project_id>/members/<string:member>", methods=["DELETE"])
@blueprint.response(204)
@requires(USE)
@problem_responses(404, 409)
def remove_member(
    project_id: int, member: str, projects: ProjectService, principal: Principal
) -> None:
    """Remove a member (owners; a project keeps one owner)."""
    projects.remove_member(principal, project_id, member)


@blueprint.route("/projects/<int:project_id>/tasks", methods=["POST"])
@blueprint.arguments(TaskInSchema())
@blueprint.response(201, TaskSchema)
@requires(USE)
@problem_responses(404)
@idempotent
@conditional
def create_task(
    body: dict[str, Any], project_id: int, tasks: TaskService, principal: Principal
) -> tuple[Task, dict[str, str]]:
    """Create a task (editors)."""
    created = tasks.create(principal, project_id, body)
    return created, {"Location": url_for("tasks.task", project_id=project_id, task_id=created.id)}


@blueprint.route("/projects/<int:project_id>/tasks", methods=["GET"])
@blueprint.arguments(TaskQuerySchema(), location="query")
@blueprint.response(200, TaskSchema(many=True))
@requires(USE)
@problem_responses(404)
@paginated(max_page_size=MAX_PAGE_SIZE, keyset=True)
def list_tasks(
    query: dict[str, Any],
    project_id: int,
    tasks: TaskService,
    principal: Principal,
    paging: PageRequest,
) -> Page[Task]:
    """A project's tasks: filters, sorting, and page-number or keyset (cursor) paging."""
    where = TaskFilter(
        status=query.get("status"),
        assignee=query.get("assignee"),
        label=query.get("label"),
        due_before=query.get("due_before"),
        due_after=query.get("due_after"),
        text=query.get("q"),
    )
    return tasks.page(principal, project_id, where, Sort.parse(query.get("sort")), paging)


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["GET"])
@blueprint.response(200, TaskSchema)
@requires(USE)
@problem_responses(404)
@conditional
def task(project_id: int, task_id: int, tasks: TaskService, principal: Principal) -> Task:
    """A task."""
    return tasks.get(principal, project_id, task_id)


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["PATCH"])
@blueprint.arguments(TaskPatchSchema())
@blueprint.response(200, TaskSchema)
@requires(USE)
@problem_responses(404)
@conditional
def patch_task(
    body: dict[str, Any],
    project_id: int,
    task_id: int,
    tasks: TaskService,
    principal: Principal,
    expected: Precondition,
) -> Task:
    """Change some fields of a task (editors; If-Match required)."""
    return tasks.update(principal, project_id, task_id, body, expected, replace=False)


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["PUT"])
@blueprint.arguments(TaskInSchema())
@blueprint.response(200, TaskSchema)
@requires(USE)
@problem_responses(404)
@conditional
def put_task(
    body: dict[str, Any],
    project_id: int,
    task_id: int,
    tasks: TaskService,
    principal: Principal,
    expected: Precondition,
) -> Task:
    """Replace a task (editors; If-Match required)."""
    return tasks.update(principal, project_id, task_id, body, expected, replace=True)


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["DELETE"])
@blueprint.response(204)
@requires(USE)
@problem_responses(404)
@conditional
def delete_task(
    project_id: int,
    task_id: int,
    tasks: TaskService,
    principal: Principal,
    expected: Precondition,
) -> None:
    """Delete a task (editors; If-Match required)."""
    tasks.delete(principal, project_id, task_id, expected)


@blueprint.route("/projects/<int:project_id>/activity", methods=["GET"])
@blueprint.response(200, ActivitySchema(many=True))
@requires(USE)
@problem_responses(404)
def activity(project_id: int, tasks: TaskService, principal: Principal) -> Sequence[Activity]:
    """What happened in the project, newest first (committed work only)."""
    return tasks.activity(principal, project_id)
