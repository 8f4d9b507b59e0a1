"""Ids a client saw are never reused, on SQLite as on PostgreSQL (``Model`` sets AUTOINCREMENT)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from plugins.accounts.passwords import Passwords
from plugins.accounts.tokens import digest
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


NOW = "2026-01-01 00:00:00.000000+00:00"
PASSWORD = "a perfectly fine passphrase"
KEY_SECRET = "s3cret-part-of-an-api-key"
# Rows as the tables stood before the migration, written with SQL: today's code writes
# today's columns. Ids are given so the relations can be checked after the copy.
SEED = (
    "INSERT INTO accounts_users (id, email, password_hash, role, is_active, token_version, "
    "created_at, updated_at) VALUES (1, 'owner@example.com', :hash, 'user', 1, 1, :now, :now), "
    "(2, 'alice@example.com', :hash, 'user', 1, 1, :now, :now)",
    "INSERT INTO accounts_refresh_tokens (id, user_id, family, token_hash, token_version, "
    "created_at, expires_at) VALUES (1, 2, 'f', 'h', 1, :now, '2999-01-01 00:00:00+00:00')",
    "INSERT INTO accounts_api_keys (id, user_id, name, prefix, secret_hash, scopes, created_at) "
    "VALUES (1, 2, 'ci', 'abcdef012345', :key_hash, '[\"accounts:self\"]', :now)",
    "INSERT INTO tasks_projects (id, name, description, owner, created_at, updated_at, version) "
    "VALUES (1, 'p', '', '1', :now, :now, 1)",
    "INSERT INTO tasks_members (project_id, principal, role, added_at) "
    "VALUES (1, '1', 'owner', :now), (1, '2', 'editor', :now)",
    "INSERT INTO tasks_tasks (id, project_id, title, description, status, priority, labels, "
    "label_index, created_at, updated_at, version) "
    "VALUES (1, 1, 't', '', 'open', 3, '[]', ',', :now, :now, 1)",
    "INSERT INTO tasks_activity (id, project_id, kind, actor, detail, created_at) "
    "VALUES (1, 1, 'task_created', '2', '{}', :now)",
    "INSERT INTO hello_greetings (id, name, message, created_at) VALUES (1, 'Ada', 'Hi', :now)",
)


@pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="the migration changes only SQLite")
def test_the_upgrade_keeps_every_row_and_every_relation(make_app: AppFactory) -> None:
    app = make_app()
    for revision in BEFORE:
        db(app, "upgrade", revision)
    engine = app.extensions["powerstrip.database"].engine
    values = {"now": NOW, "hash": Passwords().hash(PASSWORD), "key_hash": digest(KEY_SECRET)}
    with engine.begin() as connection:
        for statement in SEED:
            connection.execute(text(statement), values)
    before = counts(app)
    assert all(before.values()), before

    db(app, "upgrade")
    assert counts(app) == before  # nothing cascaded away while the tables were copied
    with engine.connect() as connection:
        assert connection.scalar(text("PRAGMA foreign_keys")) == 1  # back on for the app
        assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
        for table in ID_TABLES:
            sql = connection.scalar(
                text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": table}
            )
            assert "AUTOINCREMENT" in str(sql), table
    db(app, "check")
    # The copied relations still work: members see their project, keys hold.
    client = app.test_client()
    login = {"email": "alice@example.com", "password": PASSWORD}
    token = client.post("/api/v1/accounts/tokens", json=login).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{PROJECTS}/1/tasks/1", headers=bearer).status_code == 200
    key = {"X-API-Key": f"psk_abcdef012345_{KEY_SECRET}"}
    assert client.get("/api/v1/accounts/users/me", headers=key).get_json()["id"] == 2
    db(app, "downgrade", "base")
