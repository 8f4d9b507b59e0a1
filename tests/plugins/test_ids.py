"""Ids a client saw are never reused, on SQLite as on PostgreSQL (``Model`` sets AUTOINCREMENT)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from powerstrip import Model
from tests.conftest import TEST_DATABASE, AppFactory
from tests.plugins.tasks.conftest import PROJECTS, make_people

# The revisions before "never reuse ids on SQLite", one per branch.
BEFORE = ("1076bce94451", "6dd1b9b816f3", "d7d0715d3738")
ID_TABLES = (
    "accounts_users",
    "accounts_refresh_tokens",
    "accounts_api_keys",
    "tasks_projects",
    "tasks_tasks",
    "tasks_activity",
    "hello_greetings",
)


def db(app: Flask, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, result.output


def test_every_table_with_an_integer_id_is_autoincrement(app: Flask) -> None:
    assert app.extensions["powerstrip.plugins"]["tasks"].state == "enabled"  # models imported
    for name in ID_TABLES:
        assert Model.metadata.tables[name].dialect_options["sqlite"]["autoincrement"], name


def test_a_deleted_tasks_id_is_not_handed_out_again(migrated_app: Flask) -> None:
    people = make_people(migrated_app)
    project = people.owner.project()
    first = people.owner.task(project)["id"]
    last = people.owner.task(project)["id"]
    etag = people.owner.get(f"{PROJECTS}/{project}/tasks/{last}").headers["ETag"]
    deleted = people.owner.delete(f"{PROJECTS}/{project}/tasks/{last}", **{"If-Match": etag})
    assert deleted.status_code == 204
    assert people.owner.task(project)["id"] > last > first


def counts(app: Flask) -> dict[str, int]:
    engine = app.extensions["powerstrip.database"].engine
    with engine.connect() as connection:
        return {
            table: int(connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608
            for table in ID_TABLES
        }


@pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="the migration changes only SQLite")
def test_the_upgrade_keeps_every_row_and_every_relation(make_app: AppFactory) -> None:
    app = make_app()
    for revision in BEFORE:
        db(app, "upgrade", revision)
    people = make_people(app)  # users, logins (refresh tokens), through the API
    project = people.owner.project()
    people.owner.put(f"{PROJECTS}/{project}/members/{people.alice.user_id}", {"role": "editor"})
    people.alice.task(project)
    keys = "/api/v1/accounts/api-keys"
    key = people.alice.post(keys, {"name": "ci", "scopes": ["accounts:self"]}).get_json()["key"]
    app.test_client().post("/api/v1/hello/greetings", json={"name": "Ada"})
    before = counts(app)
    assert all(before.values()), before

    db(app, "upgrade")
    assert counts(app) == before  # nothing cascaded away while the tables were copied
    engine = app.extensions["powerstrip.database"].engine
    with engine.connect() as connection:
        assert connection.scalar(text("PRAGMA foreign_keys")) == 1  # back on for the app
        assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
        for table in ID_TABLES:
            sql = connection.scalar(
                text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": table}
            )
            assert "AUTOINCREMENT" in str(sql), table
    db(app, "check")
    # The copied relations still work: members see their project, keys and tokens hold.
    assert people.alice.get(f"{PROJECTS}/{project}").status_code == 200
    assert (
        app.test_client().get("/api/v1/accounts/users/me", headers={"X-API-Key": key}).status_code
        == 200
    )
    db(app, "downgrade", "base")
