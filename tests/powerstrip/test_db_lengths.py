"""The SDK's Model refuses a string longer than its column, on every database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import pytest
from flask import Flask
from sqlalchemy import Table

from plugins.tasks.models import Member, Project
from powerstrip import Problem, refuse_long_strings
from powerstrip.db import TOO_LONG

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def project(name: str, owner: str = "user:1") -> Project:
    return Project(name=name, owner=owner, created_at=NOW, updated_at=NOW)


def test_an_insert_longer_than_a_column_is_a_422_naming_each_attribute(
    migrated_app: Flask,
) -> None:
    session = migrated_app.extensions["powerstrip.database"].sessions()
    with session:
        session.add(project("x" * 201, owner="o" * 65))
        with pytest.raises(Problem) as raised:
            session.flush()
        session.rollback()
        assert raised.value.code == 422
        assert raised.value.description == TOO_LONG
        assert raised.value.errors == {
            "name": ["Longer than 200 characters."],
            "owner": ["Longer than 64 characters."],
        }
        assert session.query(Project).count() == 0  # nothing was written (SQLite would have)


def test_an_update_longer_than_a_column_is_refused_and_the_row_kept(
    migrated_app: Flask,
) -> None:
    sessions = migrated_app.extensions["powerstrip.database"].sessions
    with sessions() as session:
        row = project("é" * 200)  # characters, not bytes: 200 fit in String(200)
        session.add(row)
        session.commit()
        row_id = row.id
        session.add(Member(project_id=row_id, principal="p" * 64, role="owner", added_at=NOW))
        session.commit()
        row.name = "x" * 201
        with pytest.raises(Problem):
            session.commit()
        session.rollback()
    with sessions() as session:
        assert session.get(Project, row_id).name == "é" * 200


def test_values_for_a_core_statement_are_checked_as_a_models_are() -> None:
    """A Core insert()/update() fires no ORM event: refuse_long_strings is the same check."""
    table = cast(Table, Project.__table__)
    with pytest.raises(Problem) as raised:
        refuse_long_strings(table, {"name": "x" * 201, "owner": "o" * 65, "description": "d"})
    assert raised.value.code == 422
    assert raised.value.description == TOO_LONG
    assert raised.value.errors == {
        "name": ["Longer than 200 characters."],
        "owner": ["Longer than 64 characters."],
    }
    # At the limit, unbounded text and values that are not strings pass.
    refuse_long_strings(table, {"name": "x" * 200, "description": "d" * 10_000, "id": 7})


@pytest.mark.parametrize("value", [7, "x", None])
def test_a_column_the_table_lacks_is_refused_whatever_its_value(value: object) -> None:
    """A misspelt name would be dropped by the INSERT without a word: refused here."""
    table = cast(Table, Project.__table__)
    with pytest.raises(KeyError, match="nmae"):
        refuse_long_strings(table, {"nmae": value, "owner": "o"})
