"""PostgreSQL: psycopg's prepared statements survive a rollback that cannot have invalidated
them, and the rollback still undoes everything (app.pg.keep_prepared_statements).

psycopg prepares a statement on the server at its fifth run on a connection and, on its own,
forgets every prepared statement at a rollback. The requests here run one after the other, so
they share the pool's one connection, whose ``pg_prepared_statements`` show what was kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import column, create_engine, select, table, text
from sqlalchemy.exc import OperationalError

from app.db import Database
from powerstrip import Model
from tests.conftest import AppFactory
from tests.plugin_fixtures import Installer, plugin_source
from tests.services import temporary_postgres_database

PSYCOPG_PREPARES_AT = 5  # psycopg's default prepare_threshold
PREPARED = table("pg_prepared_statements", column("name"), column("statement"))

READS = """
from sqlalchemy import String, func, insert, literal_column, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column
from powerstrip import Model

class Item(Model):
    __tablename__ = "{name}_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))

def counted(session):
    return session.scalar(select(func.count()).select_from(Item).where(Item.title != "marker"))

@blp.route("/count")
@blp.response(200)
def count(session: Session):
    return {{"count": counted(session)}}

@blp.route("/titles")
@blp.response(200)
def titles(session: Session):
    return {{"titles": list(session.scalars(select(Item.title)))}}

@blp.route("/flushed")
@blp.response(200)
def flushed(session: Session):
    counted(session)
    session.add(Item(title="never committed"))
    session.flush()
    return {{}}

@blp.route("/flushed-then-failed")
@blp.response(200)
def flushed_then_failed(session: Session):
    flushed(session)
    raise RuntimeError("after a write")

@blp.route("/select-with-insert")
@blp.response(200)
def select_with_insert(session: Session):
    counted(session)
    added = insert(Item).values(title="never committed").returning(Item.id).cte()
    session.execute(select(literal_column("1")).add_cte(added))
    return {{}}

@blp.route("/driver-insert")
@blp.response(200)
def driver_insert(session: Session):
    counted(session)
    driver = session.connection().connection.driver_connection
    driver.execute("INSERT INTO {name}_items (title) VALUES ('never committed')")
    return {{}}

@blp.route("/failed-read")
@blp.response(200)
def failed_read(session: Session):
    counted(session)
    try:
        session.execute(select(literal_column("1 / 0")))
    except DBAPIError:
        return {{"failed": True}}
    return {{"failed": False}}

@blp.route("/text-count")
@blp.response(200)
def text_count(session: Session):
    counted(session)
    return {{"count": session.execute(text("SELECT count(*) FROM {name}_items")).scalar()}}

@blp.route("/savepoint")
@blp.response(200)
def savepoint(session: Session):
    counted(session)
    with session.begin_nested():
        counted(session)
    return {{}}
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temporary_postgres_database() as url:
        yield url


@dataclass(frozen=True)
class Reads:
    app: Flask
    name: str  # the plugin's: a model is defined once per process, so one name per test

    def get(self, path: str) -> tuple[int, object]:
        response = self.app.test_client().get(f"/api/v1/{self.name}/{path}")
        return response.status_code, response.get_json()

    def prepared(self) -> list[str]:
        """The statements on the plugin's table that the pool's connection has prepared, once
        psycopg's cache and the server agree on their names."""
        engine = self.app.extensions["powerstrip.database"].engine
        assert engine.pool.checkedin() == 1  # the connection every request used
        with engine.connect() as connection:
            # A compiled select(): this checkout's rollback keeps them too.
            rows = connection.execute(select(PREPARED.c.name, PREPARED.c.statement)).all()
            known = set(connection.connection.dbapi_connection._prepared._names.values())
        assert {name.encode() for name, _ in rows} == known
        return [statement for _, statement in rows if f"{self.name}_items" in statement]


ReadsFactory = Callable[..., Reads]


@pytest.fixture
def make_reads(installer: Installer, make_app: AppFactory, pg_url: str) -> ReadsFactory:
    def factory(**overrides: object) -> Reads:
        name = f"pgreads{uuid.uuid4().hex[:8]}"
        installer.install(name, plugin_source(name, READS))
        app = make_app(DATABASE_URL=pg_url, **overrides)
        database: Database = app.extensions["powerstrip.database"]
        table = Model.metadata.tables[f"{name}_items"]
        Model.metadata.create_all(database.engine, tables=[table])
        return Reads(app, name)

    return factory


@pytest.fixture
def reads(make_reads: ReadsFactory) -> Reads:
    return make_reads()


def test_reads_keep_psycopg_prepared_statements(reads: Reads) -> None:
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get("count") == (200, {"count": 0})
    assert len(reads.prepared()) == 1


@pytest.mark.parametrize(("setting", "threshold"), [(None, 5), (2, 2), (0, None)])
def test_prepare_threshold_is_a_setting(
    make_reads: ReadsFactory, setting: int | None, threshold: int | None
) -> None:
    reads = make_reads(**({} if setting is None else {"DATABASE_PREPARE_THRESHOLD": setting}))
    engine = reads.app.extensions["powerstrip.database"].engine
    with engine.connect() as connection:
        assert connection.connection.dbapi_connection.prepare_threshold == threshold
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get("count") == (200, {"count": 0})
    assert len(reads.prepared()) == (0 if threshold is None else 1)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("flushed", 200),  # the ORM's INSERT, never committed
        ("flushed-then-failed", 500),
        ("select-with-insert", 200),  # a select() whose CTE inserts
        ("driver-insert", 200),  # on the driver's connection: SQLAlchemy never sees it
    ],
)
def test_a_rollback_undoes_everything_and_keeps_the_prepared_statements(
    reads: Reads, path: str, status: int
) -> None:
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get(path)[0] == status
    assert reads.get("count") == (200, {"count": 0})  # nothing was committed
    # The count (and the INSERT of those that sent it), prepared at its fifth run and kept.
    assert [s for s in reads.prepared() if s.startswith("SELECT count(*)")] != []


@pytest.mark.parametrize(
    "path",
    [
        "text-count",  # a text() might have been anything
        "savepoint",
        "failed-read",  # a failed statement: psycopg forgets one the server now refuses
    ],
)
def test_a_rollback_after_any_other_statement_is_psycopgs_own(reads: Reads, path: str) -> None:
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get(path)[0] == 200
    assert reads.prepared() == []


def test_a_prepared_statement_the_server_refuses_fails_once(reads: Reads, pg_url: str) -> None:
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get("titles") == (200, {"titles": []})
    assert len(reads.prepared()) == 1
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as other:  # what a migration run elsewhere does
            other.execute(text(f"ALTER TABLE {reads.name}_items ALTER title TYPE varchar(100)"))
    finally:
        admin.dispose()
    # "cached plan must not change result type": that request fails, and psycopg forgets it.
    assert reads.get("titles")[0] == 500
    assert [reads.get("titles") for _ in range(3)] == [(200, {"titles": []})] * 3


def test_each_transaction_is_judged_on_its_own(reads: Reads) -> None:
    assert reads.get("text-count")[0] == 200
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get("count") == (200, {"count": 0})
    assert len(reads.prepared()) == 1


def test_a_commit_ends_what_its_transaction_ran(reads: Reads) -> None:
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get("count") == (200, {"count": 0})
    engine = reads.app.extensions["powerstrip.database"].engine
    with engine.connect() as connection:  # one checkout: no pool reset between the two
        connection.execute(text("SELECT 1"))
        connection.commit()
        connection.execute(select(text("1")).where(text("true")))
        connection.rollback()
    assert len(reads.prepared()) == 1


def test_the_database_check_keeps_them(reads: Reads) -> None:
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get("count") == (200, {"count": 0})
    reads.app.extensions["powerstrip.database"].ping()
    assert len(reads.prepared()) == 1


def test_a_rollback_on_a_broken_connection_fails_as_before(reads: Reads, pg_url: str) -> None:
    engine = reads.app.extensions["powerstrip.database"].engine
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            pid = connection.scalar(select(text("pg_backend_pid()")))
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(OperationalError, match=r"terminat|lost|closed"):
                connection.rollback()
    finally:
        admin.dispose()
    # The broken connection left the pool: the next request gets a working one.
    assert reads.get("count") == (200, {"count": 0})
