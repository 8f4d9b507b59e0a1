"""PostgreSQL: a transaction that only read ends with a commit, so psycopg keeps the
statements it prepared; anything else still rolls back (app.pg.keep_prepared_statements).

psycopg prepares a statement on the server at its fifth run on a connection and forgets every
prepared statement at a rollback. The requests here run one after the other, so they share
the pool's one connection, whose ``pg_prepared_statements`` show what was kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from app.db import Database
from powerstrip import Model
from tests.conftest import AppFactory
from tests.plugin_fixtures import Installer, plugin_source
from tests.services import temporary_postgres_database

PSYCOPG_PREPARES_AT = 5  # psycopg's default prepare_threshold

READS = """
from sqlalchemy import String, func, literal_column, select, text
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

@blp.route("/leave-open", methods=["POST"])
@blp.response(200)
def leave_open(session: Session):
    count = counted(session)
    session.add(Item(title="never committed"))
    session.flush()
    return {{"before": count}}

@blp.route("/text-count")
@blp.response(200)
def text_count(session: Session):
    return {{"count": session.execute(text("SELECT count(*) FROM {name}_items")).scalar()}}

@blp.route("/write-and-fail")
@blp.response(200)
def write_and_fail(session: Session):
    counted(session)
    session.add(Item(title="never committed"))
    session.flush()
    raise RuntimeError("after a write")

@blp.route("/failed-read")
@blp.response(200)
def failed_read(session: Session):
    counted(session)
    try:
        session.execute(select(literal_column("1 / 0")))
    except DBAPIError:
        return {{"failed": True}}
    return {{"failed": False}}
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
        """The statements on the plugin's table that the pool's connection has prepared."""
        engine = self.app.extensions["powerstrip.database"].engine
        assert engine.pool.checkedin() == 1  # the connection every request used
        with engine.connect() as connection:
            statements = connection.scalars(text("SELECT statement FROM pg_prepared_statements"))
            return [statement for statement in statements if f"{self.name}_items" in statement]


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


def test_a_request_that_wrote_still_rolls_back(reads: Reads) -> None:
    client = reads.app.test_client()
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert client.post(f"/api/v1/{reads.name}/leave-open").get_json() == {"before": 0}
    # Nothing the flushes wrote was committed, and each rollback forgot the statements.
    assert reads.get("count") == (200, {"count": 0})
    assert reads.prepared() == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("text-count", 200),  # text(): not known to read, so rolled back
        ("write-and-fail", 500),  # a write, then the view raised
        ("failed-read", 200),  # a statement failed: the transaction can only roll back
    ],
)
def test_anything_but_a_clean_read_rolls_back(reads: Reads, path: str, status: int) -> None:
    for _ in range(PSYCOPG_PREPARES_AT + 1):
        assert reads.get(path)[0] == status
    assert reads.prepared() == []
    assert reads.get("count") == (200, {"count": 0})  # the connection still serves


def test_a_read_whose_connection_broke_fails_its_rollback_as_before(
    reads: Reads, pg_url: str
) -> None:
    engine = reads.app.extensions["powerstrip.database"].engine
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            pid = connection.scalar(select(text("pg_backend_pid()")))
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            # The commit in its place fails quietly; the rollback reports the lost connection.
            with pytest.raises(OperationalError, match=r"terminat|lost|closed"):
                connection.rollback()
    finally:
        admin.dispose()
    # The broken connection left the pool: the next request gets a working one.
    assert reads.get("count") == (200, {"count": 0})
