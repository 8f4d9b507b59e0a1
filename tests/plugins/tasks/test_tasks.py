"""Tasks: CRUD, paging (page number and cursor), filters, sorting, ETags, activity."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import pytest
from flask import Flask
from sqlalchemy import JSON, Integer, event, select
from sqlalchemy.dialects import postgresql

from app.db import DATABASE
from plugins.tasks.access import MEMBERSHIP_CHANGED
from plugins.tasks.contracts import ProjectDeleted, TaskCreated, TasksEvent, TaskUpdated
from plugins.tasks.models import Task
from plugins.tasks.repository import _INSERT_ACTIVITY, TasksRepository
from powerstrip import Problem
from tests.plugins.tasks.conftest import PROJECTS, People


def titles(response: Any) -> list[str]:
    return [t["title"] for t in response.get_json()]


def test_task_crud_with_etags(people: People) -> None:
    project = people.owner.project()
    created = people.owner.task(
        project,
        description="d",
        priority=1,
        due_date="2030-01-31",
        assignee="7",
        labels=["b", "a", "a"],
    )
    assert created["status"] == "open"
    assert created["labels"] == ["a", "b"]
    assert created["id"]
    path = f"{PROJECTS}/{project}/tasks/{created['id']}"
    got = people.owner.get(path)
    assert got.get_json() == created
    tag = got.headers["ETag"]
    assert people.owner.patch(path, {"title": "x"}).status_code == 428
    done = people.owner.patch(path, {"status": "done"}, **{"If-Match": tag})
    assert done.status_code == 200
    assert done.get_json()["completed_at"] is not None
    assert people.owner.patch(path, {"title": "late"}, **{"If-Match": tag}).status_code == 412
    replaced = people.owner.put(path, {"title": "Fresh"}, **{"If-Match": done.headers["ETag"]})
    body = replaced.get_json()
    assert (
        body["title"],
        body["status"],
        body["labels"],
        body["assignee"],
        body["completed_at"],
    ) == (
        "Fresh",
        "open",
        [],
        None,
        None,
    )
    assert people.owner.delete(path).status_code == 428
    assert people.owner.delete(path, **{"If-Match": '"*"'}).status_code == 412
    assert people.owner.delete(path, **{"If-Match": "*"}).status_code == 204
    assert people.owner.get(path).status_code == 404
    assert people.owner.get(f"{PROJECTS}/{project}/tasks/999").status_code == 404


def test_validation(people: People) -> None:
    project = people.owner.project()
    response = people.owner.post(
        f"{PROJECTS}/{project}/tasks",
        {"title": "", "status": "later", "priority": 9, "labels": ["Bad Label"]},
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"title", "status", "priority", "labels.0"}


@pytest.fixture
def seeded(people: People) -> tuple[People, int]:
    project = people.owner.project()
    today = date(2030, 1, 1)
    specs = [
        ("Write docs", "open", 3, today, "7", ["docs"]),
        ("Fix login bug", "in_progress", 1, today + timedelta(days=2), "8", ["bug", "auth"]),
        ("Release", "open", 2, today + timedelta(days=10), None, ["release"]),
        ("Refactor loader", "done", 4, None, "7", []),
        ("Triage bugs", "open", 1, today - timedelta(days=1), "8", ["bug"]),
    ]
    for title, status, priority, due, assignee, labels in specs:
        people.owner.task(
            project,
            title=title,
            status=status,
            priority=priority,
            due_date=due.isoformat() if due else None,
            assignee=assignee,
            labels=labels,
        )
    return people, project


def test_filters(seeded: tuple[People, int]) -> None:
    people, project = seeded
    base = f"{PROJECTS}/{project}/tasks"
    assert titles(people.owner.get(f"{base}?status=open")) == [
        "Write docs",
        "Release",
        "Triage bugs",
    ]
    assert titles(people.owner.get(f"{base}?assignee=8")) == ["Fix login bug", "Triage bugs"]
    assert titles(people.owner.get(f"{base}?label=bug")) == ["Fix login bug", "Triage bugs"]
    assert titles(people.owner.get(f"{base}?due_before=2030-01-02")) == [
        "Write docs",
        "Triage bugs",
    ]
    assert titles(people.owner.get(f"{base}?due_after=2030-01-02")) == ["Fix login bug", "Release"]
    assert titles(people.owner.get(f"{base}?q=BUG")) == ["Fix login bug", "Triage bugs"]
    assert titles(people.owner.get(f"{base}?q=%25")) == []  # wildcards are literal
    assert titles(people.owner.get(f"{base}?label=bug&status=open")) == ["Triage bugs"]


def test_sorting_is_whitelisted_and_stable(seeded: tuple[People, int]) -> None:
    people, project = seeded
    base = f"{PROJECTS}/{project}/tasks"
    assert titles(people.owner.get(f"{base}?sort=priority")) == [
        "Fix login bug",
        "Triage bugs",
        "Release",
        "Write docs",
        "Refactor loader",
    ]
    assert titles(people.owner.get(f"{base}?sort=-priority")) == [
        "Refactor loader",
        "Write docs",
        "Release",
        "Triage bugs",
        "Fix login bug",
    ]
    bad = people.owner.get(f"{base}?sort=password")
    assert bad.status_code == 422
    assert "sort" in bad.get_json()["errors"]


def test_page_number_paging_with_link_and_x_pagination(seeded: tuple[People, int]) -> None:
    people, project = seeded
    base = f"{PROJECTS}/{project}/tasks"
    pages = [people.owner.get(f"{base}?sort=title&page_size=2&page={n}") for n in (1, 2, 3)]
    assert [titles(p) for p in pages] == [
        ["Fix login bug", "Refactor loader"],
        ["Release", "Triage bugs"],
        ["Write docs"],
    ]
    meta = json.loads(pages[0].headers["X-Pagination"])
    assert meta == {
        "page": 1,
        "page_size": 2,
        "total": 5,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "next_page": 2,
    }
    link = pages[1].headers["Link"]
    assert f'<{base}?sort=title&page_size=2&page=3>; rel="next"' in link
    assert f'<{base}?sort=title&page_size=2&page=1>; rel="prev"' in link
    assert f'<{base}?sort=title&page_size=2&page=1>; rel="first"' in link
    assert f'<{base}?sort=title&page_size=2&page=3>; rel="last"' in link
    assert 'rel="next"' not in pages[2].headers["Link"]
    assert json.loads(pages[2].headers["X-Pagination"])["previous_page"] == 2


@pytest.mark.parametrize("sort", ["id", "-priority", "title", "-created_at", "status"])
def test_cursor_paging_visits_every_task_once_in_order(
    seeded: tuple[People, int], sort: str
) -> None:
    people, project = seeded
    base = f"{PROJECTS}/{project}/tasks"
    everything = titles(people.owner.get(f"{base}?sort={sort}&page_size=100"))
    seen: list[str] = []
    url = f"{base}?sort={sort}&page_size=2&cursor="
    for _ in range(10):
        response = people.owner.get(url)
        assert response.status_code == 200
        seen += titles(response)
        meta = json.loads(response.headers["X-Pagination"])
        assert "total" not in meta  # keyset pages count only when asked
        cursor = meta["next_cursor"]
        if cursor is None:
            assert 'rel="next"' not in response.headers["Link"]
            break
        assert 'rel="next"' in response.headers["Link"]
        url = f"{base}?sort={sort}&page_size=2&cursor={cursor}"
    assert seen == everything


def test_bad_cursor_is_422(seeded: tuple[People, int]) -> None:
    people, project = seeded
    base = f"{PROJECTS}/{project}/tasks"
    response = people.owner.get(f"{base}?cursor=&page_size=2&sort=title")
    cursor = json.loads(response.headers["X-Pagination"])["next_cursor"]
    assert (
        people.owner.get(f"{base}?cursor={cursor}&sort=priority").status_code == 422
    )  # other sort
    assert people.owner.get(f"{base}?cursor=not-a-cursor").status_code == 422


def test_activity_records_committed_work_only(people: People, migrated_app: Flask) -> None:
    project = people.owner.project()
    task = people.owner.task(project, title="Ship")
    path = f"{PROJECTS}/{project}/tasks/{task['id']}"
    tag = people.owner.get(path).headers["ETag"]
    people.owner.patch(path, {"status": "done"}, **{"If-Match": tag})
    people.owner.patch(path, {"title": "stale"}, **{"If-Match": tag})  # 412: nothing happened
    people.owner.put(f"{PROJECTS}/{project}/members/{people.alice.user_id}", {"role": "viewer"})
    feed = people.owner.get(f"{PROJECTS}/{project}/activity").get_json()
    assert [a["kind"] for a in feed] == [
        "member.added",
        "task.completed",
        "task.updated",
        "task.created",
        "project.created",
    ]
    assert feed[0]["detail"] == {"principal": people.alice.user_id, "role": "viewer"}
    assert all(a["actor"] == people.owner.user_id for a in feed)

    # Work that rolls back (here: the caller's own block fails after the service returned)
    # leaves neither the task nor any activity.
    from flask_injector import RequestScope  # noqa: PLC0415

    from plugins.tasks.service import TaskService  # noqa: PLC0415
    from powerstrip import Principal, UnitOfWork  # noqa: PLC0415
    from powerstrip.cli import INJECTOR  # noqa: PLC0415

    injector = migrated_app.extensions[INJECTOR]
    principal = Principal.of(people.owner.user_id, "user", frozenset({"*"}))
    with migrated_app.test_request_context():
        scope = injector.get(RequestScope)
        scope.prepare()  # what flask-injector does at the start of every request
        uow, tasks = injector.get(UnitOfWork), injector.get(TaskService)

        def enclosing_work_fails() -> None:
            with uow:
                tasks.create(principal, project, {"title": "Doomed"})
                raise RuntimeError("the enclosing work fails")

        with pytest.raises(RuntimeError):
            enclosing_work_fails()
        scope.cleanup()
    assert titles(people.owner.get(f"{PROJECTS}/{project}/tasks")) == ["Ship"]
    after = people.owner.get(f"{PROJECTS}/{project}/activity").get_json()
    assert [a["kind"] for a in after] == [a["kind"] for a in feed]


def test_a_change_and_its_activity_entry_commit_together(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = people.owner.project()
    people.owner.task(project, title="Kept")
    before = people.owner.get(f"{PROJECTS}/{project}/activity").get_json()

    def broken(_self: object, _event: object) -> None:
        raise RuntimeError("the activity feed cannot be written")

    monkeypatch.setattr("plugins.tasks.activity.ActivityRecorder.__call__", broken)
    response = people.owner.post(f"{PROJECTS}/{project}/tasks", {"title": "Lost"})
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    monkeypatch.undo()
    assert titles(people.owner.get(f"{PROJECTS}/{project}/tasks")) == ["Kept"]  # rolled back
    assert people.owner.get(f"{PROJECTS}/{project}/activity").get_json() == before


def test_purge_done(people: People, migrated_app: Flask) -> None:
    project = people.owner.project()
    task = people.owner.task(project, status="done")
    people.owner.task(project, title="Still open")
    runner = migrated_app.test_cli_runner()
    kept = runner.invoke(args=["tasks", "purge-done", "--older-than", "30d"])
    assert kept.exit_code == 0, kept.output
    assert "deleted 0 done task(s)" in kept.output
    purged = runner.invoke(args=["tasks", "purge-done", "--older-than", "0h"])
    assert "deleted 1 done task(s)" in purged.output
    assert titles(people.owner.get(f"{PROJECTS}/{project}/tasks")) == ["Still open"]
    assert people.owner.get(f"{PROJECTS}/{project}/tasks/{task['id']}").status_code == 404
    # The command publishes the same event as deleting through the API (in its transaction).
    latest = people.owner.get(f"{PROJECTS}/{project}/activity").get_json()[0]
    assert (latest["kind"], latest["actor"]) == ("task.deleted", "system")
    assert latest["detail"] == {"task_id": task["id"]}
    bad = runner.invoke(args=["tasks", "purge-done", "--older-than", "soon"])
    assert bad.exit_code == 2


def test_an_activity_entry_longer_than_its_columns_is_refused(migrated_app: Flask) -> None:
    """The entry is a Core INSERT, which the SDK's check of string lengths does not see: the
    repository checks them itself, with the SDK's 422."""
    database = migrated_app.extensions[DATABASE]
    with database.sessions() as session:
        repository = TasksRepository(session)
        entry = {
            "project_id": 1,
            "kind": "task.created",
            "detail": {},
            "created_at": datetime.now(UTC),
        }
        with pytest.raises(Problem) as refused:
            repository.record(actor="x" * 65, **entry)
        assert refused.value.code == 422
        assert refused.value.errors == {"actor": ["Longer than 64 characters."]}
        repository.record(actor="x" * 64, **entry)
        session.commit()
        assert [entry.actor for entry in repository.activity(1, 10)] == ["x" * 64]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Nested(TasksEvent):
    """An event with values asdict() copies deeply (no tasks event has such yet)."""

    kind: ClassVar[str] = "test.nested"
    pairs: tuple[tuple[str, int], ...]
    extra: dict[str, list[int]]


def _by_asdict(published: TasksEvent) -> dict[str, Any]:
    values = asdict(published)
    del values["project_id"], values["actor"]
    return {key: list(v) if isinstance(v, tuple) else v for key, v in values.items()}


@pytest.mark.parametrize(
    "published",
    [
        TaskCreated(project_id=1, actor="2", task_id=3, title="t"),
        TaskUpdated(project_id=1, actor="2", task_id=3, fields=("title", "labels")),
        ProjectDeleted(project_id=1, actor="system"),
        _Nested(project_id=1, actor="2", pairs=(("a", 1),), extra={"b": [2]}),
    ],
)
def test_an_events_detail_is_what_asdict_gives(published: TasksEvent) -> None:
    detail = published.detail()
    assert detail == _by_asdict(published)
    assert "project_id" not in detail
    assert "actor" not in detail
    if isinstance(published, _Nested):  # a copy: changing it leaves the event alone
        detail["extra"]["b"].append(3)
        assert published.extra == {"b": [2]}


def test_an_activity_entry_reads_nothing_back(migrated_app: Flask) -> None:
    """Nobody reads an entry's id in the request that writes it: its INSERT asks for none
    (SQLAlchemy would add ``RETURNING id`` on PostgreSQL, and fetch and process the row)."""
    database = migrated_app.extensions[DATABASE]
    entry: dict[str, Any] = {
        "project_id": 1,
        "kind": "task.created",
        "actor": "1",
        "detail": {},
        "created_at": datetime.now(UTC),
    }
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        with database.sessions() as session:
            TasksRepository(session).record(**entry)
            session.commit()
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    inserts = [
        statement for statement in seen if statement.startswith("INSERT INTO tasks_activity")
    ]
    assert len(inserts) == 1
    assert "RETURNING" not in inserts[0].upper()
    # SQLite's INSERT has none either way: the statement as PostgreSQL would get it.
    compiled = _INSERT_ACTIVITY.compile(dialect=postgresql.dialect(), column_keys=list(entry))
    assert "RETURNING" not in str(compiled)


def test_a_new_task_answers_the_row_it_wrote(people: People) -> None:
    """The INSERT is a Core statement with the role check in it: the model's defaults are the
    row's and the answer's, and the answer is what a read returns (its ETag too)."""
    project = people.owner.project()
    response = people.owner.post(f"{PROJECTS}/{project}/tasks", {"title": "Bare"})
    assert response.status_code == 201
    created = response.get_json()
    assert {k: created[k] for k in ("description", "status", "priority", "labels")} == {
        "description": "",
        "status": "open",
        "priority": 3,
        "labels": [],
    }
    assert (created["due_date"], created["assignee"], created["completed_at"]) == (None,) * 3
    read = people.owner.get(f"{PROJECTS}/{project}/tasks/{created['id']}")
    assert read.get_json() == created
    assert read.headers["ETag"] == response.headers["ETag"]
    done = people.owner.task(project, title="Done at once", status="done", labels=["x"])
    assert done["completed_at"] is not None
    assert people.owner.get(f"{PROJECTS}/{project}/tasks/{done['id']}").get_json() == done


def test_a_task_longer_than_its_columns_is_refused_and_not_written(migrated_app: Flask) -> None:
    """The task's INSERT is a Core statement too: the repository checks string lengths with the
    SDK's 422 before it runs."""
    database = migrated_app.extensions[DATABASE]
    now = datetime.now(UTC)
    with database.sessions() as session:
        repository = TasksRepository(session)
        task = Task(project_id=1, title="t", label_index="," + "x" * 1000)
        task.created_at = task.updated_at = now
        with pytest.raises(Problem) as refused:
            repository.add_task_as(task, "1", ("owner",))
        assert refused.value.code == 422
        assert refused.value.errors == {"label_index": ["Longer than 1000 characters."]}
        assert session.scalars(select(Task)).all() == []


def test_a_new_tasks_insert_checks_the_roles_it_is_given(
    people: People, migrated_app: Flask
) -> None:
    """The INSERT's roles are values of its statement, built once per set: two sets of one
    role each (the same SQL) still check each its own role, and a member whose role is not
    among them gets nothing written."""
    project = people.owner.project()
    viewer = people.alice.user_id
    assert (
        people.owner.put(f"{PROJECTS}/{project}/members/{viewer}", {"role": "viewer"}).status_code
        == 200
    )
    database = migrated_app.extensions[DATABASE]
    now = datetime.now(UTC)

    def insert_as(roles: tuple[str, ...], title: str) -> bool:
        with database.sessions() as session:
            task = Task(project_id=project, title=title)
            task.created_at = task.updated_at = now
            written = TasksRepository(session).add_task_as(task, viewer, roles)
            session.commit()
            return written

    assert insert_as(("owner",), "as an owner") is False
    assert insert_as(("editor", "owner"), "as an editor") is False
    assert insert_as(("viewer",), "as a viewer") is True
    assert insert_as(("owner",), "as an owner again") is False
    assert titles(people.owner.get(f"{PROJECTS}/{project}/tasks")) == ["as a viewer"]


def test_a_role_the_insert_did_not_see_but_the_check_does_gets_another_insert(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The role is checked inside the INSERT; when the INSERT writes nothing, a second look
    tells 404 from 403. Should that look find the role after all (granted in between), the
    INSERT runs once more; should that one write nothing either, the caller is asked to retry
    (409), with nothing written."""
    project = people.owner.project()
    real = TasksRepository.add_task_as
    attempts: list[bool] = []

    def first_sees_no_role(self: TasksRepository, *args: Any) -> bool:
        attempts.append(bool(attempts) and real(self, *args))
        return attempts[-1]

    monkeypatch.setattr(TasksRepository, "add_task_as", first_sees_no_role)
    created = people.owner.post(f"{PROJECTS}/{project}/tasks", {"title": "Second try"})
    assert created.status_code == 201
    assert attempts == [False, True]

    monkeypatch.setattr(TasksRepository, "add_task_as", lambda *_: False)  # never sees it
    response = people.owner.post(f"{PROJECTS}/{project}/tasks", {"title": "Raced"})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == MEMBERSHIP_CHANGED
    monkeypatch.undo()
    assert titles(people.owner.get(f"{PROJECTS}/{project}/tasks")) == ["Second try"]


def test_a_new_task_rolled_back_leaves_nothing_behind(people: People, migrated_app: Flask) -> None:
    """A task inserted in a unit of work that then fails is not kept in the session: the next
    task of the same session (SQLite hands the rolled-back id out again) is written."""
    from flask_injector import RequestScope  # noqa: PLC0415

    from plugins.tasks.service import TaskService  # noqa: PLC0415
    from powerstrip import Principal, UnitOfWork  # noqa: PLC0415
    from powerstrip.cli import INJECTOR  # noqa: PLC0415

    project = people.owner.project()
    injector = migrated_app.extensions[INJECTOR]
    principal = Principal.of(people.owner.user_id, "user", frozenset({"*"}))
    with migrated_app.test_request_context():
        scope = injector.get(RequestScope)
        scope.prepare()
        uow, tasks = injector.get(UnitOfWork), injector.get(TaskService)
        doomed = []

        def enclosing_work_fails() -> None:
            with uow:
                doomed.append(tasks.create(principal, project, {"title": "Doomed"}))
                raise RuntimeError("the enclosing work fails")

        with pytest.raises(RuntimeError):
            enclosing_work_fails()
        kept = tasks.create(principal, project, {"title": "Kept"})
        assert kept.title == "Kept"
        assert doomed[0].title == "Doomed"  # still readable: detached, never expired
        scope.cleanup()
    assert titles(people.owner.get(f"{PROJECTS}/{project}/tasks")) == ["Kept"]


def test_a_task_default_the_insert_cannot_apply_is_refused_at_import() -> None:
    """The new task's INSERT fills defaults itself: only a Python value or callable."""
    from sqlalchemy import Column, DateTime, func  # noqa: PLC0415

    from plugins.tasks.repository import _model_default  # noqa: PLC0415

    assert _model_default(Column("a", Integer, default=3))() == 3
    assert _model_default(Column("b", Integer))() is None
    labels = _model_default(Column("c", JSON, default=list))
    assert labels() == []
    assert labels() is not labels()
    for refused in (
        Column("d", DateTime, default=func.now()),
        Column("e", DateTime, server_default=func.now()),
        Column("f", Integer, default=3, server_default="3"),
    ):
        with pytest.raises(TypeError, match="only a Python value or callable"):
            _model_default(refused)


def test_text_search_takes_like_wildcards_literally(people: People) -> None:
    project = people.owner.project()
    for title in ("50% done", "a_b", "x/y", "axb", "500 done", "x//y"):
        people.owner.task(project, title=title)
    base = f"{PROJECTS}/{project}/tasks"
    assert titles(people.owner.get(f"{base}?q=%25")) == ["50% done"]
    assert titles(people.owner.get(f"{base}?q=a_b")) == ["a_b"]
    assert titles(people.owner.get(f"{base}?q=x/y")) == ["x/y"]
    assert titles(people.owner.get(f"{base}?q=x//")) == ["x//y"]
    assert titles(people.owner.get(f"{base}?q=0%25%20d")) == ["50% done"]
