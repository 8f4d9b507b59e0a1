"""PageQuery: a paged query built once, run with each request's values."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Select, bindparam, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from powerstrip import PageQuery, PageRequest, UtcDateTime
from tests.spies import record_calls

START = datetime(2030, 1, 1, tzinfo=UTC)


class Base(DeclarativeBase):
    """Not the shared Model: the suite's metadata stays the plugins' own."""


class Entry(Base):
    __tablename__ = "paging_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str]
    at: Mapped[datetime] = mapped_column(UtcDateTime())


BY_OWNER = select(Entry).where(Entry.owner == bindparam("owner"))


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = create_engine(f"sqlite:///{tmp_path / 'paging.db'}")  # a connection per thread
    Base.metadata.create_all(engine)
    make = sessionmaker(engine)
    with make() as session:
        # Interleaved owners; times run backwards against ids, and repeat (ties on ``at``).
        session.add_all(
            Entry(owner=owner, at=START - timedelta(minutes=number // 2))
            for number in range(30)
            for owner in ("ann", "bob")
        )
        session.commit()
    return make


def every_keyset_page(
    pages: PageQuery[Entry], session: Session, owner: str, size: int
) -> list[list[int]]:
    found, cursor = [], ""
    while cursor is not None:
        page = pages.fetch(session, PageRequest(size=size, cursor=cursor), {"owner": owner})
        found.append([entry.id for entry in page.items])
        cursor = page.next_cursor
    return found


def test_one_page_query_serves_every_request_and_builds_its_statements_once(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = PageQuery(BY_OWNER, order=[Entry.at.asc(), Entry.id.asc()])
    with sessions() as session:
        expected = {
            owner: [
                entry.id
                for entry in session.scalars(
                    select(Entry).where(Entry.owner == owner).order_by(Entry.at, Entry.id)
                )
            ]
            for owner in ("ann", "bob")
        }
        built = record_calls(monkeypatch, Select, "order_by")
        for number, owner in enumerate(("ann", "bob", "ann")):
            found = every_keyset_page(pages, session, owner, size=7)
            assert [len(ids) for ids in found] == [7, 7, 7, 7, 2]
            assert [id_ for ids in found for id_ in ids] == expected[owner]
            numbered = pages.fetch(session, PageRequest(size=7, page=2), {"owner": owner})
            assert [entry.id for entry in numbered.items] == expected[owner][7:14]
            assert numbered.total == 30
            if number == 0:  # every statement built: first and later keyset pages, numbered
                assert built
                built.clear()
    assert built == []  # nothing built again for the next requests


def test_a_cursor_value_is_bound_as_its_columns_type(sessions: sessionmaker[Session]) -> None:
    """UtcDateTime stores text on SQLite: a cursor's datetime must go through its type."""
    pages = PageQuery(BY_OWNER, order=[Entry.at.desc(), Entry.id.desc()])
    with sessions() as session:
        found = every_keyset_page(pages, session, "bob", size=4)
    ids = [id_ for page in found for id_ in page]
    assert len(ids) == len(set(ids)) == 30
    with sessions() as session:
        times = [session.get_one(Entry, id_).at for id_ in ids]
    assert times == sorted(times, reverse=True)


def test_threads_share_a_page_query(sessions: sessionmaker[Session]) -> None:
    pages = PageQuery(BY_OWNER, order=[Entry.id.desc()])
    barrier = threading.Barrier(4)
    results: dict[int, list[tuple[int, str]]] = {}

    def read(number: int) -> None:
        owner = ("ann", "bob")[number % 2]
        barrier.wait(timeout=10)
        with sessions() as session:
            page = pages.fetch(session, PageRequest(size=5, cursor=""), {"owner": owner})
            results[number] = [(entry.id, entry.owner) for entry in page.items]

    threads = [threading.Thread(target=read, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4
    assert results[0] == results[2] != results[1] == results[3]
    assert {owner for _, owner in results[0]} == {"ann"}
    assert {owner for _, owner in results[1]} == {"bob"}
