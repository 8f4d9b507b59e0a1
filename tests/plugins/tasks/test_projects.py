"""Projects, membership and who may do what."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from tests.plugins.tasks.conftest import PROJECTS, People


def test_create_makes_the_caller_owner(people: People) -> None:
    response = people.owner.post(PROJECTS, {"name": "Launch", "description": "Q4"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "Launch"
    assert body["owner"] == people.owner.user_id
    assert response.headers["Location"].endswith(f"{PROJECTS}/{body['id']}")
    members = people.owner.get(f"{PROJECTS}/{body['id']}/members").get_json()
    assert [(m["principal"], m["role"]) for m in members] == [(people.owner.user_id, "owner")]


def test_idempotent_create_replays_and_refuses_another_body(people: People) -> None:
    first = people.owner.post(PROJECTS, {"name": "Once"}, **{"Idempotency-Key": "abc"})
    again = people.owner.post(PROJECTS, {"name": "Once"}, **{"Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = people.owner.post(PROJECTS, {"name": "Twice"}, **{"Idempotency-Key": "abc"})
    assert other.status_code == 422
    assert "used with another request" in other.get_json()["detail"]
    listed = people.owner.get(PROJECTS).get_json()
    assert [p["name"] for p in listed] == ["Once"]
    # keys are per principal: the same key from someone else is a new request
    assert (
        people.alice.post(PROJECTS, {"name": "Once"}, **{"Idempotency-Key": "abc"}).get_json()["id"]
        != first.get_json()["id"]
    )


def test_a_replay_goes_only_to_a_caller_the_operation_still_admits(people: People) -> None:
    """Same subject, a key without tasks:use: the view's 403, never the stored answer."""
    first = people.alice.post(PROJECTS, {"name": "Mine"}, **{"Idempotency-Key": "k1"})
    assert first.status_code == 201
    created = people.alice.post("/api/v1/accounts/api-keys", {"name": "no scopes", "scopes": []})
    assert created.status_code == 201, created.get_json()
    narrow = people.alice.client.post(
        PROJECTS,
        json={"name": "Mine"},
        headers={"X-API-Key": created.get_json()["key"], "Idempotency-Key": "k1"},
    )
    assert narrow.status_code == 403
    assert "Idempotent-Replayed" not in narrow.headers


def test_list_shows_only_ones_projects_with_paging(people: People) -> None:
    for name in ("a", "b", "c"):
        people.owner.project(name)
    people.alice.project("mine")
    page = people.owner.get(f"{PROJECTS}?page=2&page_size=2")
    assert [p["name"] for p in page.get_json()] == ["c"]
    assert json.loads(page.headers["X-Pagination"])["total"] == 3
    assert 'rel="prev"' in page.headers["Link"]
    alone = people.alice.get(PROJECTS)  # no query string: the links carry their page only
    assert [p["name"] for p in alone.get_json()] == ["mine"]
    assert alone.headers["Link"] == (
        f'<{PROJECTS}?page=1>; rel="first", <{PROJECTS}?page=1>; rel="last"'
    )
    assert page.headers["Link"] == (
        f'<{PROJECTS}?page_size=2&page=1>; rel="first", '
        f'<{PROJECTS}?page_size=2&page=1>; rel="prev", '
        f'<{PROJECTS}?page_size=2&page=2>; rel="last"'
    )


def test_non_members_get_404_so_existence_does_not_leak(people: People) -> None:
    project = people.owner.project()
    assert people.alice.get(f"{PROJECTS}/{project}").status_code == 404
    assert people.alice.get(f"{PROJECTS}/{project + 1000}").status_code == 404
    assert people.alice.get(f"{PROJECTS}/{project}/tasks").status_code == 404
    assert people.alice.post(f"{PROJECTS}/{project}/tasks", {"title": "x"}).status_code == 404


def test_a_task_is_found_by_membership_then_role_then_existence(people: People) -> None:
    """One query reads the caller's role and the task: non-members get the project's 404
    (even for a task that exists), then too low a role its 403, then a missing task 404."""
    project, other = people.owner.project(), people.owner.project()
    task = people.owner.task(project)["id"]
    elsewhere = people.owner.task(other)["id"]
    assert (
        people.owner.put(
            f"{PROJECTS}/{project}/members/{people.alice.user_id}", {"role": "viewer"}
        ).status_code
        == 200
    )

    def detail(response: Any, status: int) -> str:
        assert response.status_code == status, response.get_json()
        return str(response.get_json()["detail"])

    tasks = f"{PROJECTS}/{project}/tasks"
    assert detail(people.bob.get(f"{tasks}/{task}"), 404) == "No such project."
    assert people.alice.get(f"{tasks}/{task}").get_json()["id"] == task
    assert detail(people.alice.get(f"{tasks}/{elsewhere}"), 404) == "No such task."
    assert detail(people.alice.delete(f"{tasks}/999999", **{"If-Match": '"x"'}), 403).startswith(
        "This needs the editor role"
    )
    assert detail(people.owner.get(f"{tasks}/{elsewhere}"), 404) == "No such task."
    assert detail(people.owner.delete(f"{tasks}/999999", **{"If-Match": '"x"'}), 404) == (
        "No such task."
    )


@pytest.mark.parametrize("query", ["", "?cursor=", "?total=true", "?page=2&page_size=1"])
def test_a_list_is_a_members_even_when_empty_and_a_non_members_404(
    people: People, query: str
) -> None:
    """The page query requires membership itself; an empty page falls back to the role check
    (a non-member's page is empty too)."""
    full, empty = people.owner.project(), people.owner.project()
    people.owner.task(full)
    for project in (full, empty):
        assert (
            people.owner.put(
                f"{PROJECTS}/{project}/members/{people.alice.user_id}", {"role": "viewer"}
            ).status_code
            == 200
        )
    listed = people.alice.get(f"{PROJECTS}/{full}/tasks{query}")
    assert listed.status_code == 200
    assert len(listed.get_json()) == (0 if "page=2" in query else 1)
    assert people.alice.get(f"{PROJECTS}/{empty}/tasks{query}").get_json() == []
    for project in (full, empty):
        refused = people.bob.get(f"{PROJECTS}/{project}/tasks{query}")
        assert refused.status_code == 404
        assert refused.get_json()["detail"] == "No such project."


def test_a_refused_cursor_is_a_members_422_and_a_non_members_404(people: People) -> None:
    project = people.owner.project()
    people.owner.task(project)
    tasks = f"{PROJECTS}/{project}/tasks?cursor=not-a-cursor"
    assert people.owner.get(tasks).status_code == 422
    refused = people.bob.get(tasks)
    assert refused.status_code == 404
    assert refused.get_json()["detail"] == "No such project."


def test_roles_viewer_editor_owner(people: People) -> None:
    project = people.owner.project()
    assert (
        people.owner.put(
            f"{PROJECTS}/{project}/members/{people.alice.user_id}", {"role": "viewer"}
        ).status_code
        == 200
    )
    assert (
        people.owner.put(
            f"{PROJECTS}/{project}/members/{people.bob.user_id}", {"role": "editor"}
        ).status_code
        == 200
    )
    task = people.owner.task(project)
    path = f"{PROJECTS}/{project}/tasks/{task['id']}"
    assert people.alice.get(path).status_code == 200  # viewers read
    assert people.alice.post(f"{PROJECTS}/{project}/tasks", {"title": "no"}).status_code == 403
    tag = people.bob.get(path).headers["ETag"]
    assert people.bob.patch(path, {"status": "in_progress"}, **{"If-Match": tag}).status_code == 200
    # editors change tasks but do not manage the project
    assert (
        people.bob.put(
            f"{PROJECTS}/{project}/members/{people.alice.user_id}", {"role": "owner"}
        ).status_code
        == 403
    )
    project_tag = people.owner.get(f"{PROJECTS}/{project}").headers["ETag"]
    assert (
        people.bob.patch(
            f"{PROJECTS}/{project}", {"name": "x"}, **{"If-Match": project_tag}
        ).status_code
        == 403
    )


def test_project_update_and_delete_need_if_match(people: People) -> None:
    project = people.owner.project()
    path = f"{PROJECTS}/{project}"
    assert people.owner.patch(path, {"name": "Renamed"}).status_code == 428
    tag = people.owner.get(path).headers["ETag"]
    updated = people.owner.patch(path, {"name": "Renamed"}, **{"If-Match": tag})
    assert updated.status_code == 200
    assert updated.headers["ETag"] != tag
    assert people.owner.patch(path, {"name": "Stale"}, **{"If-Match": tag}).status_code == 412
    assert people.owner.delete(path, **{"If-Match": tag}).status_code == 412
    assert people.owner.delete(path, **{"If-Match": updated.headers["ETag"]}).status_code == 204
    assert people.owner.get(path).status_code == 404


def test_membership_changes_and_the_last_owner(people: People) -> None:
    project = people.owner.project()
    members = f"{PROJECTS}/{project}/members"
    assert people.owner.delete(f"{members}/{people.owner.user_id}").status_code == 409
    assert (
        people.owner.put(f"{members}/{people.owner.user_id}", {"role": "viewer"}).status_code == 409
    )
    people.owner.put(f"{members}/{people.alice.user_id}", {"role": "owner"})
    assert (
        people.owner.put(f"{members}/{people.owner.user_id}", {"role": "editor"}).status_code == 200
    )
    assert people.alice.delete(f"{members}/{people.owner.user_id}").status_code == 204
    assert people.alice.delete(f"{members}/{people.owner.user_id}").status_code == 404
    assert people.owner.get(f"{PROJECTS}/{project}").status_code == 404
    bad = people.alice.put(f"{members}/{people.bob.user_id}", {"role": "god"})
    assert bad.status_code == 422


def test_anonymous_and_scopeless_callers(people: People) -> None:
    assert people.owner.client.get(PROJECTS).status_code == 401
    key = people.alice.post(
        "/api/v1/accounts/api-keys", {"name": "read-only", "scopes": ["accounts:self"]}
    ).get_json()["key"]
    response = people.alice.client.get(PROJECTS, headers={"X-API-Key": key})
    assert response.status_code == 403
    assert "tasks:use" in response.get_json()["detail"]


def test_only_existing_principals_become_members(people: People, migrated_app: Flask) -> None:
    project = people.owner.project()
    members = f"{PROJECTS}/{project}/members"
    for phantom in ("999999999", "not-a-user", "9" * 40):
        response = people.owner.put(f"{members}/{phantom}", {"role": "viewer"})
        assert response.status_code == 422, phantom
        assert response.get_json()["errors"] == {"member": ["No such principal."]}
    # A deactivated user is no principal either.
    admin = {"Authorization": f"Bearer {people.owner.token}"}
    deactivated = people.owner.client.patch(
        f"/api/v1/accounts/users/{people.bob.user_id}", json={"is_active": False}, headers=admin
    )
    assert deactivated.status_code == 200
    assert (
        people.owner.put(f"{members}/{people.bob.user_id}", {"role": "viewer"}).status_code == 422
    )
    listed = people.owner.get(members).get_json()
    assert [m["principal"] for m in listed] == [people.owner.user_id]


def test_membership_is_published_for_other_plugins(people: People, migrated_app: Flask) -> None:
    from flask_injector import RequestScope  # noqa: PLC0415

    from plugins.tasks.contracts import ProjectMembership  # noqa: PLC0415
    from powerstrip.cli import INJECTOR  # noqa: PLC0415

    project = people.owner.project()
    people.owner.put(f"{PROJECTS}/{project}/members/{people.alice.user_id}", {"role": "viewer"})
    injector = migrated_app.extensions[INJECTOR]
    with migrated_app.test_request_context():
        injector.get(RequestScope).prepare()
        membership = injector.get(ProjectMembership)
        assert isinstance(membership, ProjectMembership)
        assert membership.is_member(people.alice.user_id, project)
        assert not membership.is_member(people.bob.user_id, project)
        assert membership.members(project) == {people.owner.user_id, people.alice.user_id}
        assert membership.members(project + 1000) == frozenset()


def test_operations_document_the_problems_they_answer(migrated_app: Flask) -> None:
    paths = migrated_app.test_client().get("/api/openapi.json").get_json()["paths"]
    task = paths["/api/v1/tasks/projects/{project_id}/tasks/{task_id}"]
    expected = {"404": "NOT_FOUND", "412": "PRECONDITION_FAILED", "428": "PRECONDITION_REQUIRED"}
    for method in ("patch", "put", "delete"):
        responses = task[method]["responses"]
        for status, name in expected.items():
            assert responses[status] == {"$ref": f"#/components/responses/{name}"}, method
    member = paths["/api/v1/tasks/projects/{project_id}/members/{member}"]["put"]["responses"]
    assert {"404", "409", "422"} <= set(member)
