"""The host database: one engine per app, sessions per request or command, the unit of work.

- :class:`Database` owns the engine of one app (no global engine, no global session).
- ``Session`` is request-scoped through the injector and always closed at request teardown
  (CLI commands get a scope of their own); an uncommitted transaction rolls back then.
- The SDK's :class:`~powerstrip.UnitOfWork` and :class:`~powerstrip.Model` are bound here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import injector
from flask import Flask, g
from flask_injector import request
from sqlalchemy import Connection, Engine, create_engine, event, exc, literal, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool, QueuePool, StaticPool

from app import sqlite
from powerstrip.contracts import HealthCheck
from powerstrip.db import UnitOfWork

_SESSION = "powerstrip_session"
DATABASE = "powerstrip.database"


SQLITE_SYNCHRONOUS = frozenset({"FULL", "NORMAL"})


def _sqlite_pragmas(synchronous: str) -> Callable[[Any, Any], None]:
    """Foreign keys, WAL, a busy timeout and ``synchronous`` on each new SQLite connection."""
    if synchronous not in SQLITE_SYNCHRONOUS:  # never formatted into SQL unchecked
        raise ValueError(f"SQLite synchronous must be one of {sorted(SQLITE_SYNCHRONOUS)}")

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={round(sqlite.BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    return on_connect


def _timed(pool_class: type[Pool], on_wait: Callable[[float], None]) -> type[Pool]:
    """``pool_class`` reporting how long each checkout waited for a connection.

    A subclass, not a patched instance: ``engine.dispose()`` (after a fork) recreates the pool
    from its class, so the timing survives it.
    """

    def _do_get(self: Pool) -> Any:
        started = time.perf_counter()
        try:
            return pool_class._do_get(self)
        finally:
            on_wait(time.perf_counter() - started)

    # Its module is the base's: SQLAlchemy names the pool's logger after it (sqlalchemy.pool...).
    namespace = {"_do_get": _do_get, "__module__": pool_class.__module__}
    return type(f"Timed{pool_class.__name__}", (pool_class,), namespace)


_IDLE_SINCE = "powerstrip_idle_since"


def _ping_after_idle(engine: Engine, idle: float) -> None:
    """Ping a pooled connection before use only when it sat unused longer than ``idle``
    seconds (HikariCP's "alive bypass window"; SQLAlchemy's ``pool_pre_ping`` pings every
    checkout, one round trip per request).

    A connection that died while idle (a restarted server, a proxy or firewall dropping quiet
    connections) is found by the ping and replaced, with every pooled connection older than it
    (SQLAlchemy's pre-ping does the same). One used a moment ago is taken as alive: if it died
    in between, the statement fails (a 503) and SQLAlchemy then discards every pooled
    connection, so the next requests get new ones.
    """
    dialect = engine.dialect

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)  # none yet: a new connection (its info is reset)
        if since is None or time.monotonic() - since <= idle:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError from error  # replaced, with the older ones
            raise

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


def make_engine(
    url: str | URL,
    *,
    pool: dict[str, Any],
    on_wait: Callable[[float], None] | None = None,
    read_timeout: float | None = None,
    prepare_threshold: int | None = 5,
    sqlite_synchronous: str = "FULL",
    ping_after_idle: float = 0.0,
) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL, a busy timeout,
    ``sqlite_synchronous`` (FULL or NORMAL) and, in a file, writers queued for its write lock
    instead of polling for it (:mod:`app.sqlite`).

    :param on_wait: told the seconds each connection checkout waited (metrics)
    :param read_timeout: PostgreSQL: seconds any wait for the server may last before the
        connection is closed and the operation fails (:mod:`app.pg`); None: unbounded
    :param prepare_threshold: PostgreSQL with psycopg: runs of a statement on a connection
        after which psycopg prepares it on the server; None or 0: never (:mod:`app.pg`)
    :param ping_after_idle: PostgreSQL: ping a pooled connection before use when it was idle
        longer than this many seconds (:func:`_ping_after_idle`); 0: at every checkout
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if not in_memory:  # writers queue for the write lock (app.sqlite)
            writers = sqlite.Writers(str(parsed.database))
            options["connect_args"]["factory"] = sqlite.connection_class(writers)
        if in_memory:
            options["poolclass"] = StaticPool  # one connection, or every checkout is a new DB
        elif on_wait is not None:
            options["poolclass"] = _timed(QueuePool, on_wait)
        engine = create_engine(parsed, hide_parameters=True, **options)
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous))
        return engine
    if on_wait is not None:
        pool = {**pool, "poolclass": _timed(QueuePool, on_wait)}
    if "connect_args" in pool:
        pool = {**pool, "connect_args": _merge_connect_args(parsed, pool["connect_args"])}
    if parsed.get_driver_name() == "psycopg":  # a connect() argument of psycopg's, not libpq's
        pool = {
            **pool,
            "connect_args": {
                **pool.get("connect_args", {}),
                "prepare_threshold": prepare_threshold or None,  # psycopg's 0: at once
            },
        }
    engine = create_engine(parsed, pool_pre_ping=ping_after_idle <= 0, hide_parameters=True, **pool)
    if ping_after_idle > 0:
        _ping_after_idle(engine, ping_after_idle)
    if parsed.get_driver_name() == "psycopg":
        from app import pg  # noqa: PLC0415 - psycopg only for PostgreSQL engines

        event.listen(engine, "do_connect", pg.connector(read_timeout))
        if prepare_threshold:
            pg.keep_prepared_statements(engine)
    return engine


def _merge_connect_args(url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
    """``connect_args`` under the URL's own libpq parameters, which win (connect_args would
    override them): ``?connect_timeout=20`` is kept. ``options`` add up instead, the URL's
    first (its ``search_path``, ours the statement timeout)."""
    merged = {key: value for key, value in connect_args.items() if key not in url.query}
    given = url.query.get("options")
    if isinstance(given, str) and "options" in connect_args:
        merged["options"] = f"{given} {connect_args['options']}"
    return merged


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
            connection.execute(select(literal(1)))  # compiled: keeps prepared statements

    def init_app(self, app: Flask) -> None:
        """Close the request's session (rolling back anything uncommitted) at teardown."""
        app.teardown_request(_close_session)

    def open_session(self) -> Session:
        """A session for the current request, closed at its teardown."""
        session = self.sessions()
        g.setdefault(_SESSION, []).append(session)
        return session


_current_g = g._get_current_object  # flask.g's own lookup of its object, read once


def _close_session(_exc: BaseException | None) -> None:
    for session in _current_g().pop(_SESSION, []):
        session.close()


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
