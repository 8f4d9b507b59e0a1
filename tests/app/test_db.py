"""The host database: engine settings, sessions per request, the unit of work, outages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Integer, String, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import create_app
from app.db import Database, make_engine
from powerstrip import EventBus, Model, UnitOfWork
from tests.conftest import AppFactory
from tests.plugin_fixtures import Installer, plugin_source
from tests.services import REDIS_URL, require_redis, temporary_postgres_database


class Thing(Model):
    """A host-test table (no plugin owns it, so no prefix rule applies)."""

    __tablename__ = "dbtest_things"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class ThingAdded:
    name: str


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(make_engine(database_url, pool={}))
    Model.metadata.create_all(db.engine, tables=[Thing.__table__])  # type: ignore[list-item]
    yield db
    Model.metadata.drop_all(db.engine, tables=[Thing.__table__])  # type: ignore[list-item]
    db.engine.dispose()


def names(database: Database) -> list[str]:
    with database.sessions() as session:
        return list(session.scalars(select(Thing.name).order_by(Thing.name)))


def test_sqlite_has_foreign_keys_and_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", pool={})
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


@pytest.mark.parametrize(("setting", "pragma"), [(None, 2), ("FULL", 2), ("NORMAL", 1)])
def test_sqlite_synchronous_is_a_setting_full_by_default(
    make_app: AppFactory, tmp_path: Path, setting: str | None, pragma: int
) -> None:
    chosen = {} if setting is None else {"DATABASE_SQLITE_SYNCHRONOUS": setting}
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'sync.db'}", **chosen)
    with app.extensions["powerstrip.database"].engine.connect() as connection:
        assert connection.execute(text("PRAGMA synchronous")).scalar() == pragma


def test_only_known_sqlite_synchronous_values_reach_the_pragma(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be one of"):
        make_engine(f"sqlite:///{tmp_path / 'x.db'}", pool={}, sqlite_synchronous="OFF; --")


def test_in_memory_sqlite_keeps_one_database() -> None:
    engine = make_engine("sqlite://", pool={})
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE kept (id INTEGER)"))
    with engine.connect() as connection:  # a second checkout sees the same database
        assert connection.execute(text("SELECT count(*) FROM kept")).scalar() == 0
    engine.dispose()


def test_unit_of_work_commits_then_delivers_events(database: Database) -> None:
    events = EventBus()
    delivered: list[tuple[ThingAdded, list[str]]] = []
    events.subscribe(ThingAdded, lambda event: delivered.append((event, names(database))))
    with database.sessions() as session, UnitOfWork(session, events) as active:
        active.add(Thing(name="a"))
        events.publish(ThingAdded("a"))
        assert delivered == []
    # delivered after the commit: the subscriber already sees the row
    assert delivered == [(ThingAdded("a"), ["a"])]


def test_unit_of_work_rolls_back_and_drops_events(database: Database) -> None:
    events = EventBus()
    delivered: list[object] = []
    events.subscribe(ThingAdded, delivered.append)

    def failing_work(session: Session) -> None:
        with UnitOfWork(session, events) as active:
            active.add(Thing(name="b"))
            events.publish(ThingAdded("b"))
            raise RuntimeError("business rule broken")

    with database.sessions() as session, pytest.raises(RuntimeError):
        failing_work(session)
    assert names(database) == []
    assert delivered == []


def test_a_failing_commit_rolls_back_and_drops_events(database: Database) -> None:
    events = EventBus()
    delivered: list[object] = []
    events.subscribe(ThingAdded, delivered.append)
    with database.sessions() as session, UnitOfWork(session, events) as active:
        active.add(Thing(name="dup"))

    def duplicate(session: Session) -> None:
        with UnitOfWork(session, events) as active:
            active.add(Thing(name="dup"))  # violates the unique constraint at commit
            events.publish(ThingAdded("dup"))

    with database.sessions() as session, pytest.raises(IntegrityError):
        duplicate(session)
    assert names(database) == ["dup"]
    assert delivered == []


def test_ping_fails_when_unreachable() -> None:
    database = Database(
        make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool={"pool_timeout": 1})
    )
    with pytest.raises(OperationalError, match=r"127\.0\.0\.1"):
        database.ping()


UNCOMMITTED = """
from sqlalchemy import String, select, func
from sqlalchemy.orm import Mapped, Session, mapped_column
from powerstrip import Model

class Item(Model):
    __tablename__ = "{name}_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))

@blp.route("/leave-open", methods=["POST"])
@blp.response(200)
def leave_open(session: Session):
    session.add(Item(title="never committed"))
    session.flush()
    return {{"pending": session.scalar(select(func.count()).select_from(Item))}}

@blp.route("/count")
@blp.response(200)
def count(session: Session):
    return {{"count": session.scalar(select(func.count()).select_from(Item))}}
"""


def test_request_session_is_closed_and_uncommitted_work_rolled_back(
    installer: Installer, make_app: AppFactory
) -> None:
    name = "uncommitted"
    installer.install(name, plugin_source(name, UNCOMMITTED))
    app = make_app()
    database: Database = app.extensions["powerstrip.database"]
    Model.metadata.create_all(database.engine, tables=[Model.metadata.tables[f"{name}_items"]])
    client = app.test_client()
    assert client.post(f"/api/v1/{name}/leave-open").get_json() == {"pending": 1}
    assert database.engine.pool.checkedout() == 0  # the session was closed at teardown
    assert client.get(f"/api/v1/{name}/count").get_json() == {"count": 0}


def test_unreachable_database_is_a_503_problem(make_app: AppFactory) -> None:
    app = make_app(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = app.test_client()
    response = client.get("/api/v1/hello/greetings", headers={"X-Request-ID": "db-down"})
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["detail"] == "The database is unavailable; try again shortly."
    assert body["request_id"] == "db-down"
    assert response.headers["Retry-After"] == "5"
    assert "127.0.0.1" not in response.get_data(as_text=True)
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] == {
        "status": "down",
        "error": "OperationalError",
        "duration_ms": ready.get_json()["checks"]["database"]["duration_ms"],
    }


def test_redis_check_when_redis_holds_the_counters(make_app: AppFactory) -> None:
    require_redis()
    ready = make_app(RATELIMIT_STORAGE_URI=REDIS_URL).test_client().get("/api/v1/health/ready")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["redis"]["status"] == "up"
    down = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0").test_client()
    response = down.get("/api/v1/health/ready")
    # The limiter falls back to memory: the instance still serves, so it stays in rotation.
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["checks"]["redis"]["status"] == "degraded"


def test_database_url_is_validated_and_redacted(instance_path: Path) -> None:
    from app import ConfigError  # noqa: PLC0415
    from app.config import REDACTED, redacted  # noqa: PLC0415

    with pytest.raises(ConfigError, match=r"key DATABASE_URL: Use sqlite:/// or postgresql"):
        create_app({"ENVIRONMENT": "testing", "DATABASE_URL": "mysql://x/y"})
    with pytest.raises(ConfigError, match=r"key DATABASE_URL: not a database URL"):
        create_app({"ENVIRONMENT": "testing", "DATABASE_URL": "::::"})
    shown = redacted({"DATABASE_URL": "postgresql+psycopg://app:s3cret@db:5432/app"})
    assert shown["DATABASE_URL"] == f"postgresql+psycopg://app:{REDACTED}@db:5432/app"


def test_default_database_is_sqlite_in_the_instance_folder(instance_path: Path) -> None:
    app = create_app({"ENVIRONMENT": "testing", "INSTANCE_PATH": str(instance_path)})
    url = app.extensions["powerstrip.database"].engine.url
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(instance_path / "powerstrip.db")


def test_the_instance_folder_of_the_default_database_is_created(tmp_path: Path) -> None:
    """``powerstrip db upgrade`` works in a fresh project: no ``mkdir instance`` first."""
    instance = tmp_path / "fresh" / "instance"
    app = create_app({"ENVIRONMENT": "testing", "INSTANCE_PATH": str(instance), "PLUGINS": []})
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (instance / "powerstrip.db").is_file()


def test_hello_migrations_then_concurrent_requests_keep_every_row(migrated_app: Flask) -> None:
    client = migrated_app.test_client()

    def post(index: int) -> None:
        response = migrated_app.test_client().post(
            "/api/v1/hello/greetings", json={"name": f"user{index}"}
        )
        assert response.status_code == 201, response.get_json()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    listed = client.get("/api/v1/hello/greetings").get_json()
    assert sorted(row["name"] for row in listed) == sorted(f"user{i}" for i in range(8))
    database: Database = migrated_app.extensions["powerstrip.database"]
    assert "hello_greetings" in inspect(database.engine).get_table_names()


def test_per_test_transaction_rolls_back_committed_work(rollback_app: Flask) -> None:
    client = rollback_app.test_client()
    for name in ("ada", "bob"):  # each request commits through its unit of work
        assert client.post("/api/v1/hello/greetings", json={"name": name}).status_code == 201
    assert [row["name"] for row in client.get("/api/v1/hello/greetings").get_json()] == [
        "bob",
        "ada",
    ]


def test_commits_stay_inside_the_test_transaction(rollback_app: Flask) -> None:
    """What the app commits is invisible outside the test's transaction, then rolled back."""
    client = rollback_app.test_client()
    assert client.get("/api/v1/hello/greetings").get_json() == []
    database: Database = rollback_app.extensions["powerstrip.database"]
    with database.engine.connect() as outside:  # a connection outside the test transaction
        client.post("/api/v1/hello/greetings", json={"name": "carol"})
        seen_outside = outside.execute(text("SELECT count(*) FROM hello_greetings")).scalar()
    assert seen_outside == 0  # committed inside the test transaction only


def test_nested_units_of_work_commit_once_with_the_outer_block(database: Database) -> None:
    events = EventBus()
    delivered: list[object] = []
    events.subscribe(ThingAdded, delivered.append)
    with database.sessions() as session:
        uow = UnitOfWork(session, events)

        def outer_fails() -> None:
            with uow:
                with uow as inner:  # a service's own block, joined to the caller's
                    inner.add(Thing(name="inner"))
                    events.publish(ThingAdded("inner"))
                raise RuntimeError("the caller's rule fails after the service returned")

        with pytest.raises(RuntimeError):
            outer_fails()
    assert names(database) == []
    assert delivered == []
    with database.sessions() as session:
        uow = UnitOfWork(session, events)
        with uow, uow as inner:
            inner.add(Thing(name="both"))
            events.publish(ThingAdded("both"))
    assert names(database) == ["both"]
    assert delivered == [ThingAdded("both")]


SLOW_VIEW = """
from sqlalchemy import text
from sqlalchemy.orm import Session


@blp.route("/slow")
@blp.response(200)
def slow(session: Session):
    \"\"\"Ten seconds at the database.\"\"\"
    session.execute(text("SELECT pg_sleep(10)"))
    return {{"slept": True}}
"""


def test_a_statement_past_the_timeout_is_a_503_and_the_worker_goes_on(
    installer: Installer, make_app: AppFactory
) -> None:
    """DATABASE_STATEMENT_TIMEOUT on PostgreSQL: the server cancels the statement."""
    with temporary_postgres_database() as url:
        installer.install("slowpoke", plugin_source("slowpoke", SLOW_VIEW))
        # One connection: the one the migrations used is the one asked afterwards.
        app = make_app(
            DATABASE_URL=f"{url}?options=-c%20search_path%3Dpublic",
            DATABASE_STATEMENT_TIMEOUT=200,
            DATABASE_POOL_SIZE=1,
            DATABASE_MAX_OVERFLOW=0,
        )
        client = app.test_client()
        response = client.get("/api/v1/slowpoke/slow", headers={"X-Request-ID": "slow-1"})
        assert (response.status_code, response.mimetype) == (503, "application/problem+json")
        body = response.get_json()
        assert body["detail"] == "The database took too long to answer; try again shortly."
        assert body["request_id"] == "slow-1"
        assert response.headers["Retry-After"] == "5"
        assert "pg_sleep" not in response.get_data(as_text=True)
        assert client.get("/api/v1/health/ready").status_code == 200  # the pool is fine
        # Migrations run without the limit, and give their connection back with it.
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
        engine = app.extensions["powerstrip.database"].engine
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
            assert connection.exec_driver_sql("SHOW search_path").scalar() == "public"  # kept
