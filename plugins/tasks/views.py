"""HTTP views of the tasks plugin: validate, call one service method, shape the response."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlencode

from flask import Response, request, url_for
from flask_smorest import Blueprint

from plugins.tasks.access import USE, etag
from plugins.tasks.idempotency import Created
from plugins.tasks.models import Project, Task
from plugins.tasks.projects import ProjectService
from plugins.tasks.repository import Sort, TaskFilter
from plugins.tasks.schemas import (
    ActivitySchema,
    MemberInSchema,
    MemberSchema,
    PageQuerySchema,
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
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENT_REPLAYED_HEADER,
    IF_MATCH_HEADER,
    Principal,
    problem_responses,
    requires,
)

IF_MATCH = {"in": "header", "name": IF_MATCH_HEADER, "required": True, "schema": {"type": "string"}}
IDEMPOTENCY_KEY = {
    "in": "header",
    "name": IDEMPOTENCY_KEY_HEADER,
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "Repeat a POST safely: the same key and body replay the first answer",
}

blueprint = Blueprint("tasks", __name__, description="Projects, tasks and their activity")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def _created(result: Created, location: str, tag: str | None) -> Response:
    headers = {"Location": location}
    if tag:
        headers["ETag"] = tag
    if result.replayed:
        headers[IDEMPOTENT_REPLAYED_HEADER] = "true"
    return _json(result.body, result.status, headers)


def _with_etag(body: dict[str, Any], row: Project | Task) -> Response:
    return _json(body, headers={"ETag": etag(row)})


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    return key[:200] if key else None


@blueprint.route("/projects", methods=["POST"])
@blueprint.arguments(ProjectInSchema)
@blueprint.response(201, ProjectSchema)
@blueprint.doc(parameters=[IDEMPOTENCY_KEY])
@requires(USE)
def create_project(
    body: dict[str, Any], projects: ProjectService, principal: Principal
) -> Response:
    """Create a project; the caller becomes its owner."""
    result = projects.create(principal, body, _idempotency_key(), ProjectSchema().dump)
    return _created(result, url_for("tasks.project", project_id=result.body["id"]), None)


@blueprint.route("/projects", methods=["GET"])
@blueprint.arguments(PageQuerySchema, location="query")
@blueprint.response(200, ProjectSchema(many=True))
@requires(USE)
def list_projects(
    query: dict[str, Any], projects: ProjectService, principal: Principal
) -> Response:
    """The caller's projects."""
    rows, total = projects.list(principal, query["page"], query["page_size"])
    return _json(ProjectSchema(many=True).dump(rows), headers=_page_headers(query, total))


@blueprint.route("/projects/<int:project_id>", methods=["GET"])
@blueprint.response(200, ProjectSchema)
@requires(USE)
@problem_responses(404)
def project(project_id: int, projects: ProjectService, principal: Principal) -> Response:
    """A project (members only; others get 404)."""
    found = projects.get(principal, project_id)
    return _with_etag(ProjectSchema().dump(found), found)


@blueprint.route("/projects/<int:project_id>", methods=["PATCH"])
@blueprint.arguments(ProjectPatchSchema)
@blueprint.response(200, ProjectSchema)
@blueprint.doc(parameters=[IF_MATCH])
@requires(USE)
@problem_responses(404, 412, 428)
def update_project(
    body: dict[str, Any], project_id: int, projects: ProjectService, principal: Principal
) -> Response:
    """Rename or describe a project (owners; If-Match required)."""
    updated = projects.update(principal, project_id, body, request.headers.get(IF_MATCH_HEADER))
    return _with_etag(ProjectSchema().dump(updated), updated)


@blueprint.route("/projects/<int:project_id>", methods=["DELETE"])
@blueprint.response(204)
@blueprint.doc(parameters=[IF_MATCH])
@requires(USE)
@problem_responses(404, 412, 428)
def delete_project(project_id: int, projects: ProjectService, principal: Principal) -> None:
    """Delete a project and its tasks (owners; If-Match required)."""
    projects.delete(principal, project_id, request.headers.get(IF_MATCH_HEADER))


@blueprint.route("/projects/<int:project_id>/members", methods=["GET"])
@blueprint.response(200, MemberSchema(many=True))
@requires(USE)
@problem_responses(404)
def members(project_id: int, projects: ProjectService, principal: Principal) -> Any:
    """A project's members."""
    return projects.members(principal, project_id)


@blueprint.route("/projects/<int:project_id>/members/<string:member>", methods=["PUT"])
@blueprint.arguments(MemberInSchema)
@blueprint.response(200, MemberSchema)
@requires(USE)
@problem_responses(404, 409)
def set_member(
    body: dict[str, Any],
    project_id: int,
    member: str,
    projects: ProjectService,
    principal: Principal,
) -> Any:
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
@blueprint.arguments(TaskInSchema)
@blueprint.response(201, TaskSchema)
@blueprint.doc(parameters=[IDEMPOTENCY_KEY])
@requires(USE)
@problem_responses(404)
def create_task(
    body: dict[str, Any], project_id: int, tasks: TaskService, principal: Principal
) -> Response:
    """Create a task (editors)."""
    result = tasks.create(principal, project_id, body, _idempotency_key(), TaskSchema().dump)
    location = url_for("tasks.task", project_id=project_id, task_id=result.body["id"])
    return _created(result, location, None)


@blueprint.route("/projects/<int:project_id>/tasks", methods=["GET"])
@blueprint.arguments(TaskQuerySchema, location="query")
@blueprint.response(200, TaskSchema(many=True))
@requires(USE)
@problem_responses(404)
def list_tasks(
    query: dict[str, Any], project_id: int, tasks: TaskService, principal: Principal
) -> Response:
    """A project's tasks: filters, sorting, and page-number or cursor paging."""
    where = TaskFilter(
        status=query.get("status"),
        assignee=query.get("assignee"),
        label=query.get("label"),
        due_before=query.get("due_before"),
        due_after=query.get("due_after"),
        text=query.get("q"),
    )
    result = tasks.page(
        principal,
        project_id,
        where,
        Sort.parse(query.get("sort")),
        page=query["page"],
        size=query["page_size"],
        cursor=query.get("cursor"),
    )
    body = TaskSchema(many=True).dump(result.items)
    if query.get("cursor") is None:
        return _json(body, headers=_page_headers(query, result.total or 0))
    return _json(body, headers=_cursor_headers(query, result.next_cursor))


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["GET"])
@blueprint.response(200, TaskSchema)
@requires(USE)
@problem_responses(404)
def task(project_id: int, task_id: int, tasks: TaskService, principal: Principal) -> Response:
    """A task."""
    found = tasks.get(principal, project_id, task_id)
    return _with_etag(TaskSchema().dump(found), found)


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["PATCH"])
@blueprint.arguments(TaskPatchSchema)
@blueprint.response(200, TaskSchema)
@blueprint.doc(parameters=[IF_MATCH])
@requires(USE)
@problem_responses(404, 412, 428)
def patch_task(
    body: dict[str, Any], project_id: int, task_id: int, tasks: TaskService, principal: Principal
) -> Response:
    """Change some fields of a task (editors; If-Match required)."""
    updated = tasks.update(
        principal, project_id, task_id, body, request.headers.get(IF_MATCH_HEADER), replace=False
    )
    return _with_etag(TaskSchema().dump(updated), updated)


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["PUT"])
@blueprint.arguments(TaskInSchema)
@blueprint.response(200, TaskSchema)
@blueprint.doc(parameters=[IF_MATCH])
@requires(USE)
@problem_responses(404, 412, 428)
def put_task(
    body: dict[str, Any], project_id: int, task_id: int, tasks: TaskService, principal: Principal
) -> Response:
    """Replace a task (editors; If-Match required)."""
    updated = tasks.update(
        principal, project_id, task_id, body, request.headers.get(IF_MATCH_HEADER), replace=True
    )
    return _with_etag(TaskSchema().dump(updated), updated)


@blueprint.route("/projects/<int:project_id>/tasks/<int:task_id>", methods=["DELETE"])
@blueprint.response(204)
@blueprint.doc(parameters=[IF_MATCH])
@requires(USE)
@problem_responses(404, 412, 428)
def delete_task(project_id: int, task_id: int, tasks: TaskService, principal: Principal) -> None:
    """Delete a task (editors; If-Match required)."""
    tasks.delete(principal, project_id, task_id, request.headers.get(IF_MATCH_HEADER))


@blueprint.route("/projects/<int:project_id>/activity", methods=["GET"])
@blueprint.response(200, ActivitySchema(many=True))
@requires(USE)
@problem_responses(404)
def activity(project_id: int, tasks: TaskService, principal: Principal) -> Any:
    """What happened in the project, newest first (committed work only)."""
    return tasks.activity(principal, project_id)


def _link(query: dict[str, Any], **changes: Any) -> str:
    params = {k: v for k, v in {**query, **changes}.items() if v is not None}
    return f"<{request.base_url}?{urlencode(params, doseq=True)}>"


def _page_headers(query: dict[str, Any], total: int) -> dict[str, str]:
    size, page = query["page_size"], query["page"]
    last = max(1, math.ceil(total / size))
    links = [f'{_link(query, page=1)}; rel="first"', f'{_link(query, page=last)}; rel="last"']
    if page < last:
        links.append(f'{_link(query, page=page + 1)}; rel="next"')
    if page > 1:
        links.append(f'{_link(query, page=page - 1)}; rel="prev"')
    pagination = {"total": total, "total_pages": last, "page": page, "page_size": size}
    return {"Link": ", ".join(links), "X-Pagination": json.dumps(pagination)}


def _cursor_headers(query: dict[str, Any], next_cursor: str | None) -> dict[str, str]:
    headers = {
        "X-Pagination": json.dumps({"page_size": query["page_size"], "next_cursor": next_cursor})
    }
    if next_cursor:
        headers["Link"] = f'{_link({**query, "page": None}, cursor=next_cursor)}; rel="next"'
    return headers
