"""The SDK's HTTP decorators refuse misuse when a plugin is written, not on a request."""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.datastructures import ETags

from powerstrip import Page, PageRequest, Precondition, Problem, Versioned, paginated
from powerstrip.conditional import conditional, entity_tag, unpack
from powerstrip.http import PASSES, marks
from powerstrip.idempotency import idempotent, is_idempotent
from powerstrip.paging import _Key, _parse


class Base(DeclarativeBase):
    """Not the shared Model: the suite's metadata stays the plugins' own."""


class Probe(Versioned, Base):
    __tablename__ = "probe_versioned"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(default="")


def test_a_versioned_row_has_a_tag_that_changes_with_each_update() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        row = Probe()
        with pytest.raises(TypeError, match="not a persisted Versioned row"):
            entity_tag(row)
        session.add(row)
        session.commit()
        first = entity_tag(row)
        assert row.version == 1
        Precondition.ANY.check(row)
        Precondition(ETags([first])).check(row)
        with pytest.raises(Problem) as stale:
            Precondition(ETags(["other"], weak_etags=[first])).check(row)  # strong only
        assert stale.value.code == 412
        row.name = "changed"
        session.commit()
        assert row.version == 2
        assert entity_tag(row) != first
        with pytest.raises(Problem):
            Precondition(ETags([first])).check(row)
    assert not first.startswith('"')  # unquoted: the decorator quotes it in the header


def test_paginated_refuses_a_view_without_a_page_request() -> None:
    with pytest.raises(TypeError, match="no parameter annotated PageRequest"):

        @paginated()
        def listing(query: dict[str, Any]) -> Page[int]:
            raise AssertionError

    with pytest.raises(ValueError, match="default_page_size"):
        paginated(max_page_size=10, default_page_size=20)


def test_paginated_refuses_a_view_that_returns_no_page() -> None:
    @paginated(max_page_size=5, default_page_size=5)
    def listing(paging: PageRequest) -> Any:
        return [1, 2]

    with Flask(__name__).test_request_context("/?page=1"):
        with pytest.raises(TypeError, match="must return a Page"):
            listing()  # type: ignore[call-arg] # the decorator passes paging
        assert marks(listing)[PASSES] == frozenset({"paging"})


def test_conditional_refuses_unresolvable_annotations() -> None:
    def view(expected: Unknown) -> None:  # type: ignore[name-defined] # noqa: F821
        raise AssertionError

    with pytest.raises(TypeError, match="cannot resolve its annotations"):
        conditional(view)


def test_marks_survive_wrapping_and_combine() -> None:
    @idempotent
    @conditional
    def view(expected: Precondition | None) -> None:
        raise AssertionError

    @functools.wraps(view)
    def outer() -> None:
        raise AssertionError

    assert is_idempotent(outer)
    assert marks(outer)[PASSES] == frozenset({"expected"})
    assert not is_idempotent(lambda: None)


def test_only_rows_have_entity_tags() -> None:
    for value in ([1], "text", object()):
        with pytest.raises(TypeError, match="not a persisted Versioned row"):
            entity_tag(value)


def test_unpack_reads_every_view_return_shape() -> None:
    assert unpack("body") == ("body", None, {})
    assert unpack(("body", 201)) == ("body", 201, {})
    assert unpack(("body", {"A": "1"})) == ("body", None, {"A": "1"})
    assert unpack(("body", 201, {"A": "1"})) == ("body", 201, {"A": "1"})
    assert unpack(("body", 201, None)) == ("body", 201, {})


@pytest.mark.parametrize(
    ("value", "kind", "parsed"),
    [
        (True, bool, True),
        (3, float, 3.0),
        (2.5, float, 2.5),
        ("2030-01-02", date, date(2030, 1, 2)),
        ("a", str, "a"),
    ],
)
def test_cursor_values_are_read_as_their_column_type(value: Any, kind: type, parsed: Any) -> None:
    assert _parse(value, kind) == parsed


@pytest.mark.parametrize(
    ("value", "kind"),
    [(1, bool), (True, int), (float("inf"), float), ("x", float), (3, date), ([], str)],
)
def test_cursor_values_of_another_type_are_refused(value: Any, kind: type) -> None:
    with pytest.raises(ValueError, match="not a cursor value"):
        _parse(value, kind)


def test_a_key_without_a_direction_is_ascending() -> None:
    key = _Key.of(Probe.id)  # type: ignore[arg-type]
    assert not key.descending
    assert key.signature() == "probe_versioned.id+"


def test_conditional_writes_without_a_precondition_parameter_still_require_if_match() -> None:
    calls: list[str] = []

    @conditional
    def delete(expected: Precondition) -> None:
        calls.append("delete")

    @conditional
    def remove() -> None:
        calls.append("remove")

    @conditional
    def read(expected: Precondition) -> Any:
        assert expected is Precondition.ANY
        return None

    app = Flask(__name__)
    with app.test_request_context("/", method="DELETE"):
        with pytest.raises(Problem) as missing:
            remove()
        assert missing.value.code == 428
    with app.test_request_context("/", method="DELETE", headers={"If-Match": "*"}):
        remove()
        delete()  # type: ignore[call-arg] # the decorator passes it
    with app.test_request_context("/"):
        assert read() is None  # type: ignore[call-arg]
    assert calls == ["remove", "delete"]
