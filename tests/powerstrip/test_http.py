"""The SDK's HTTP decorators refuse misuse when a plugin is written, not on a request."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from flask import Flask
from sqlalchemy import create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.datastructures import ETags

from powerstrip import Page, PageRequest, Precondition, Problem, Versioned, fetch_page, paginated
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
    note: Mapped[str | None] = mapped_column(default=None)
    blob: Mapped[bytes] = mapped_column(default=b"")
    amount: Mapped[Decimal] = mapped_column(default=Decimal(0))


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
        Precondition.any().check(row)
        with pytest.raises(Problem):  # If-None-Match: * on a write: the row must not exist
            Precondition(ETags(star_tag=True), ETags(star_tag=True)).check(row)
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
        ("1.50", Decimal, Decimal("1.50")),
        ("2030-01-02T03:04:05+02:00", datetime, datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC)),
        (str(UUID(int=7)), UUID, UUID(int=7)),
    ],
)
def test_cursor_values_are_read_as_their_column_type(value: Any, kind: type, parsed: Any) -> None:
    assert _parse(value, kind) == parsed


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (1, bool),
        (True, int),
        (float("inf"), float),
        ("x", float),
        (3, date),
        ([], str),
        ("a\x00b", str),
        ("\udc80", str),
        ("NaN", Decimal),
        ("2030-01-02T03:04:05", datetime),
        ("x", bytes),
    ],
)
def test_cursor_values_of_another_type_are_refused(value: Any, kind: type) -> None:
    with pytest.raises(ValueError, match="not a cursor value"):
        _parse(value, kind)


def test_a_key_without_a_direction_is_ascending() -> None:
    key = _Key.of(Probe.id)  # type: ignore[arg-type]
    assert not key.descending
    assert key.signature() == "probe_versioned.id+"


def test_a_conditional_write_must_take_and_check_its_precondition() -> None:
    """A write that ignored If-Match would lose updates: it fails loudly instead."""
    calls: list[str] = []

    @conditional
    def careless(expected: Precondition) -> None:
        calls.append("careless")

    @conditional
    def unguarded() -> None:
        calls.append("unguarded")

    @conditional
    def read(expected: Precondition) -> Any:
        assert expected.tags.star_tag  # reads get no condition
        return None

    app = Flask(__name__)
    with app.test_request_context("/", method="DELETE"):
        with pytest.raises(Problem) as missing:
            unguarded()
        assert missing.value.code == 428
    with app.test_request_context("/", method="DELETE", headers={"If-Match": "*"}):
        with pytest.raises(RuntimeError, match="takes no Precondition parameter"):
            unguarded()
        with pytest.raises(RuntimeError, match="without checking its Precondition"):
            careless()  # type: ignore[call-arg] # the decorator passes it
    with app.test_request_context("/"):
        assert read() is None  # type: ignore[call-arg]
    assert calls == ["careless"]


def test_keyset_paging_refuses_orders_it_cannot_follow() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Probe(amount=Decimal("1.5")), Probe(amount=Decimal("2.5"))])
        session.commit()
        first = PageRequest(size=1, cursor="")
        for column in (Probe.note, Probe.blob):
            with pytest.raises(TypeError, match="keyset paging by probe_versioned"):
                fetch_page(session, select(Probe), first, order=[column, Probe.id])
        order = [Probe.amount.desc(), Probe.id.desc()]
        page = fetch_page(session, select(Probe), first, order=order)
        assert [row.amount for row in page.items] == [Decimal("2.5")]
        assert page.next_cursor is not None
        after = PageRequest(size=1, cursor=page.next_cursor)
        rest = fetch_page(session, select(Probe), after, order=order)
        assert [row.amount for row in rest.items] == [Decimal("1.5")]
        assert rest.next_cursor is None
        counted = fetch_page(session, select(Probe), PageRequest(size=5), order=order)
        assert counted.total == 2  # page numbers may order by anything
