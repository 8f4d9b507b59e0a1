"""The host database: engine, the shared model base, request-scoped sessions, unit of work.

- :class:`Model` is the typed declarative base every plugin's models derive from: one shared
  ``MetaData`` with a naming convention, so constraint names are stable across databases and
  migrations. A plugin's tables are named ``<plugin>_<name>`` (the loader checks it).
- :class:`Database` owns the engine of one app (no global engine, no global session).
- ``Session`` is request-scoped through the injector and always closed at request teardown;
  an uncommitted transaction rolls back then.
- :class:`UnitOfWork` commits or rolls back a block as a whole, and delivers the domain events
  published inside it only after the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import injector
from flask import Flask, g
from flask_injector import request
from sqlalchemy import Connection, DateTime, Dialect, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from app.contracts import HealthCheck
from app.events import EventBus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_SESSION = "powerstrip_session"
DATABASE = "powerstrip.database"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp column on every database.

    SQLite hands back naive datetimes even for ``DateTime(timezone=True)``; this type stores
    aware values as UTC and always returns aware UTC values, so no caller has to guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (Clock.now() is)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Model(DeclarativeBase):
    """Base class of every plugin's SQLAlchemy models (typed, ``Mapped[...]``)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str | URL, *, pool: dict[str, Any]) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if in_memory:
            options["poolclass"] = StaticPool  # one connection, or every checkout is a new DB
        engine = create_engine(parsed, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, **pool)


class Database:
    """The engine and session factory of one app."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(bind=engine, expire_on_commit=False)

    def use_connection(self, connection: Connection) -> None:
        """Make every session join ``connection``'s transaction, through savepoints.

        For tests: open a connection, begin a transaction, hand it here, roll it back at the
        end of the test; everything the app committed meanwhile disappears with it.
        """
        self.sessions = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )

    def ping(self) -> None:
        """Run ``SELECT 1``; raises if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def init_app(self, app: Flask) -> None:
        """Close the request's session (rolling back anything uncommitted) at teardown."""
        app.teardown_request(_close_session)

    def open_session(self) -> Session:
        """A session for the current request, closed at its teardown."""
        session = self.sessions()
        g.setdefault(_SESSION, []).append(session)
        return session


def _close_session(_exc: BaseException | None) -> None:
    for session in g.pop(_SESSION, []):
        session.close()


class UnitOfWork:
    """Commit or roll back a block as a whole; publish its events only after the commit.

    Use::

        with uow as session:
            session.add(task)
            events.publish(TaskCreated(task.id))

    The block commits when it ends normally and rolls back when it raises (a failing commit
    rolls back too); events published inside reach subscribers only after the commit. Blocks
    nest: an inner block (a service called by another service) joins the outer one, which
    alone commits or rolls back.
    """

    @injector.inject
    def __init__(self, session: Session, events: EventBus) -> None:
        self.session = session
        self._events = events
        self._blocks: list[AbstractContextManager[Session]] = []

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        if self._blocks:  # joined by an outer block: it decides
            with self._events.deferred():
                yield self.session
            return
        with self._events.deferred():
            try:
                yield self.session
                self.session.commit()
            except BaseException:
                self.session.rollback()
                raise

    def __enter__(self) -> Session:
        block = self._transaction()
        session = block.__enter__()
        self._blocks.append(block)
        return session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return self._blocks.pop().__exit__(exc_type, exc, traceback)


class DatabaseModule(injector.Module):
    """Binds the engine, the request-scoped Session, the UnitOfWork and the database check."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def configure(self, binder: injector.Binder) -> None:
        binder.bind(Database, to=self._database)
        binder.bind(Engine, to=self._database.engine)
        binder.bind(
            Session, to=injector.CallableProvider(self._database.open_session), scope=request
        )
        binder.bind(UnitOfWork, to=UnitOfWork, scope=request)
        binder.multibind(list[HealthCheck], to=[HealthCheck("database", self._database.ping)])


def after_fork(app: Flask) -> None:
    """Drop pooled connections inherited from the parent process (call in each worker).

    ``close=False``: the parent's connections are not closed under it, just forgotten here.
    """
    database: Database | None = app.extensions.get(DATABASE)
    if database is not None:
        database.engine.dispose(close=False)
