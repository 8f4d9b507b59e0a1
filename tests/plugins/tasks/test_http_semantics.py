"""The SDK's HTTP semantics as the tasks and accounts plugins serve them.

Conditional requests (ETag, 304, If-Match 428/412), one pagination (page numbers and keyset
cursors, one X-Pagination shape, Link rels, 422 above the maximum) and their OpenAPI document.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from app.db import DATABASE, Database
from tests.plugins.tasks.conftest import PROJECTS, People
from tests.plugins.tasks.test_tasks import seeded

__all__ = ["seeded"]  # the fixture, used here by name


def test_a_create_answers_the_etag_a_first_patch_can_use(people: People) -> None:
    project = people.owner.project()
    created = people.owner.post(f"{PROJECTS}/{project}/tasks", {"title": "One"})
    assert created.status_code == 201
    location = created.headers["Location"]
    assert location.endswith(f"{PROJECTS}/{project}/tasks/{created.get_json()['id']}")
    tag = created.headers["ETag"]
    patched = people.owner.patch(location, {"title": "Two"}, **{"If-Match": tag})
    assert patched.status_code == 200
    assert patched.headers["ETag"] != tag
    assert people.owner.get(location).headers["ETag"] == patched.headers["ETag"]


def test_if_none_match_answers_304_with_no_body_until_the_resource_changes(
    people: People,
) -> None:
    project = people.owner.project()
    path = f"{PROJECTS}/{project}"
    tag = people.owner.get(path).headers["ETag"]
    for condition in (tag, f"W/{tag}", f'"other", {tag}', "*"):  # weak comparison, lists, *
        cached = people.owner.get(path, **{"If-None-Match": condition})
        assert cached.status_code == 304, condition
        assert cached.get_data() == b""
        assert cached.headers["ETag"] == tag
        assert cached.headers["Cache-Control"] == "private, no-cache"  # kept, revalidated
    assert people.owner.get(path, **{"If-None-Match": '"other"'}).status_code == 200
    people.owner.patch(path, {"name": "Renamed"}, **{"If-Match": tag})
    fresh = people.owner.get(path, **{"If-None-Match": tag})
    assert fresh.status_code == 200
    assert fresh.get_json()["name"] == "Renamed"


def test_if_match_compares_strongly_and_accepts_a_list(people: People) -> None:
    project = people.owner.project()
    path = f"{PROJECTS}/{project}"
    tag = people.owner.get(path).headers["ETag"]
    weak = people.owner.patch(path, {"name": "x"}, **{"If-Match": f"W/{tag}"})
    assert weak.status_code == 412
    assert weak.headers["Content-Type"] == "application/problem+json"
    listed = people.owner.patch(path, {"name": "y"}, **{"If-Match": f'"old", {tag}'})
    assert listed.status_code == 200
    missing = people.owner.patch(path, {"name": "z"})
    assert missing.status_code == 428
    assert "If-Match" in missing.get_json()["detail"]


def test_every_precondition_is_evaluated_whatever_the_method(people: People) -> None:
    project = people.owner.project()
    path = f"{PROJECTS}/{project}"
    tag = people.owner.get(path).headers["ETag"]
    assert people.owner.get(path, **{"If-Match": '"old"'}).status_code == 412
    assert people.owner.get(path, **{"If-Match": tag}).status_code == 200
    exists = people.owner.patch(path, {"name": "x"}, **{"If-Match": "*", "If-None-Match": "*"})
    assert exists.status_code == 412  # If-None-Match: * means "only if it does not exist"
    assert people.owner.get(path).get_json()["name"] == "Launch"


def test_a_page_size_above_the_maximum_is_a_422_naming_it(seeded: tuple[People, int]) -> None:
    people, project = seeded
    for path in (f"{PROJECTS}/{project}/tasks", PROJECTS, "/api/v1/accounts/users"):
        response = people.owner.get(f"{path}?page_size=101")
        assert response.status_code == 422, path
        assert "100" in response.get_json()["errors"]["page_size"][0]
        assert people.owner.get(f"{path}?page_size=100").status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=99999999999999999999", "page"),
        ("page_size=0", "page_size"),
        ("page_size=-5", "page_size"),
        ("page=2&cursor=", "page"),
        ("total=maybe&cursor=", "total"),
        ("cursor=" + "a" * 2001, "cursor"),
    ],
)
def test_bad_paging_parameters_are_422(seeded: tuple[People, int], query: str, field: str) -> None:
    people, project = seeded
    response = people.owner.get(f"{PROJECTS}/{project}/tasks?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_a_list_paged_by_number_only_refuses_a_cursor(people: People) -> None:
    response = people.owner.get(f"{PROJECTS}?cursor=")
    assert response.status_code == 422
    assert "page number only" in response.get_json()["errors"]["cursor"][0]


def test_past_the_last_page_is_empty_and_points_back(seeded: tuple[People, int]) -> None:
    people, project = seeded
    response = people.owner.get(f"{PROJECTS}/{project}/tasks?page=9&page_size=2")
    assert response.status_code == 200
    assert response.get_json() == []
    meta = json.loads(response.headers["X-Pagination"])
    assert meta["previous_page"] == meta["last_page"] == 3
    assert "next_page" not in meta


@pytest.fixture
def statements(migrated_app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app runs while the test watches."""
    seen: list[str] = []
    engine = migrated_app.extensions[DATABASE]
    assert isinstance(engine, Database)

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine.engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.engine, "before_cursor_execute", record)


def test_keyset_pages_count_only_when_asked(
    seeded: tuple[People, int], statements: list[str]
) -> None:
    people, project = seeded
    base = f"{PROJECTS}/{project}/tasks?page_size=2"
    statements.clear()
    plain = people.owner.get(f"{base}&cursor=")
    assert not [s for s in statements if "count(" in s.lower()]
    assert "total" not in json.loads(plain.headers["X-Pagination"])
    statements.clear()
    counted = people.owner.get(f"{base}&cursor=&total=true")
    assert [s for s in statements if "count(" in s.lower()]
    meta = json.loads(counted.headers["X-Pagination"])
    assert meta["total"] == 5
    assert meta["next_cursor"]
    assert f"cursor={meta['next_cursor']}" in counted.headers["Link"]


def _cursor_with(cursor: str, values: list[Any]) -> str:
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data["v"] = values
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("id", ["1"]),  # a string for an integer
        ("id", [True]),  # a boolean is not an integer
        ("id", [2**70]),  # beyond every database's integer
        ("id", []),  # too few values
        ("priority", ["high", 3]),
        ("title", [7, 3]),
        ("title", ["x\x00y", 3]),  # PostgreSQL refuses NUL in text
        ("title", ["\ud800", 3]),  # a lone surrogate: not UTF-8
        ("-created_at", ["yesterday", 3]),
        ("-created_at", [12, 3]),
        ("-created_at", ["2030-01-01T00:00:00", 3]),  # no timezone
        ("-created_at", ["9999-12-31T23:59:59-05:00", 3]),  # past the last UTC moment
        ("-created_at", ["0001-01-01T00:00:00+05:00", 3]),  # before the first
    ],
)
def test_a_forged_cursor_is_a_422_never_a_500(
    seeded: tuple[People, int], sort: str, values: list[Any]
) -> None:
    people, project = seeded
    base = f"{PROJECTS}/{project}/tasks?sort={sort}&page_size=2"
    cursor = json.loads(people.owner.get(f"{base}&cursor=").headers["X-Pagination"])["next_cursor"]
    forged = people.owner.get(f"{base}&cursor={_cursor_with(cursor, values)}")
    assert forged.status_code == 422
    assert "cursor" in forged.get_json()["errors"]
    for junk in ("bm90IGpzb24", "WzFd", "_-_-"):  # not JSON; a list; not base64 text
        assert people.owner.get(f"{base}&cursor={junk}").status_code == 422
    # Bytes that are not UTF-8: the host refuses the query string before the view.
    assert people.owner.get(f"{base}&cursor=%FF%FE").status_code == 400


def test_accounts_and_tasks_send_one_x_pagination_shape(seeded: tuple[People, int]) -> None:
    people, project = seeded
    tasks = people.owner.get(f"{PROJECTS}/{project}/tasks?page=2&page_size=2")
    users = people.owner.get("/api/v1/accounts/users?page=2&page_size=1")
    projects = people.owner.get(f"{PROJECTS}?page=1&page_size=1")
    shapes = [json.loads(r.headers["X-Pagination"]) for r in (tasks, users, projects)]
    assert [set(shape) for shape in shapes[:2]] == [
        {"page", "page_size", "total", "total_pages", "first_page", "last_page"}
        | {"previous_page", "next_page"}
    ] * 2
    assert shapes[1] == {
        "page": 2,
        "page_size": 1,
        "total": 3,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "previous_page": 1,
        "next_page": 3,
    }
    rels = {part.split('rel="')[1].rstrip('"') for part in users.headers["Link"].split(", ")}
    assert rels == {"first", "prev", "next", "last"}
    assert len(tasks.get_json()) == shapes[0]["page_size"] == 2  # the header tells the truth


def _operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


def _parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if "name" in p}


def test_the_openapi_document_describes_etags_paging_and_idempotency(
    migrated_app: Flask,
) -> None:
    document = migrated_app.test_client().get("/api/openapi.json").get_json()
    task = "/api/v1/tasks/projects/{project_id}/tasks/{task_id}"
    tasks = "/api/v1/tasks/projects/{project_id}/tasks"

    read = _operation(document, task, "get")
    assert "If-None-Match" in _parameters(read)
    assert "304" in read["responses"]
    assert "ETag" in read["responses"]["200"]["headers"]
    for method in ("patch", "put", "delete"):
        write = _operation(document, task, method)
        assert _parameters(write)["If-Match"]["required"] is True, method
        assert {"412", "428", "404"} <= set(write["responses"]), method
    assert "ETag" in _operation(document, task, "patch")["responses"]["200"]["headers"]

    listed = _operation(document, tasks, "get")
    parameters = _parameters(listed)
    assert parameters["page_size"]["schema"]["maximum"] == 100
    assert {"page", "cursor", "total", "status", "sort"} <= set(parameters)
    assert {"X-Pagination", "Link"} <= set(listed["responses"]["200"]["headers"])
    users = _parameters(_operation(document, "/api/v1/accounts/users", "get"))
    assert {"page", "page_size"} <= set(users)
    assert "cursor" not in users

    create = _operation(document, tasks, "post")
    assert "Idempotency-Key" in _parameters(create)
    assert {"409", "422"} <= set(create["responses"])
    assert {"ETag", "Idempotent-Replayed"} <= set(create["responses"]["201"]["headers"])
