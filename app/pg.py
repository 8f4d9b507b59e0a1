"""psycopg specifics: a client-side bound on every wait for PostgreSQL on an open connection,
and prepared statements kept across rollbacks that cannot have invalidated them.

libpq bounds opening a connection (``connect_timeout``), the server bounds a statement
(``statement_timeout``), and TCP drops a connection whose peer stopped acknowledging
(keepalives, ``tcp_user_timeout``). Nothing bounds a server that still acknowledges but never
answers: a hung process, a stopped container whose port a proxy keeps open, a proxy that
accepts and forwards nothing. A request on such a connection would wait for as long as the
outage lasts, holding a worker's thread.

:class:`PgConnection` is a psycopg connection whose every wait for the server (a query,
its rows, a commit, the pool's ping) gives up after ``read_timeout`` seconds: it closes the
connection (its protocol state is unknown: a late answer must not be read as the next one's)
and raises :class:`psycopg.OperationalError`. SQLAlchemy sees a closed connection, so it
treats the error as a disconnect (the connection leaves the pool) and the host answers a 503
problem with ``Retry-After``. The bound must exceed the statement timeout, so that a slow
statement is cancelled by the server (keeping its connection) before the client gives up.

psycopg prepares a statement on the server once a connection has run it
``prepare_threshold`` times: later runs skip PostgreSQL's parsing and planning. But it forgets
every prepared statement at each rollback, in case the rollback took an object they refer to
with it (a table created in the transaction), and every request that did not commit ended with
one (the session's close): no statement a read ran ever reached its fifth run.
:class:`PgConnection` keeps them across a rollback, unless :func:`keep_prepared_statements`
saw its transaction run a statement that might have created or changed such an object, or one
of its statements failed (a prepared statement the server now refuses is forgotten, as psycopg
does). It is still a rollback: nothing the transaction did stays.

Imported only for a PostgreSQL engine (psycopg is not loaded for SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Delete, Engine, Insert, Select, Update, event
from sqlalchemy.engine import ExecutionContext

T = TypeVar("T")

# Statements that cannot create or change what a prepared statement refers to.
_PLAIN = (Select, Insert, Update, Delete)


class PgConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits at most ``read_timeout`` seconds for the server, and
    whose rollback keeps the prepared statements unless ``unsafe_rollback`` is set or a
    statement of the transaction failed."""

    read_timeout: float | None = None  # seconds; None: unbounded
    # Set by keep_prepared_statements when the transaction ran a statement that might have
    # created or changed what a prepared statement refers to: its rollback is psycopg's own.
    unsafe_rollback = False

    def commit(self) -> None:
        super().commit()
        self.unsafe_rollback = False

    def rollback(self) -> None:
        kept = getattr(self, "_prepared", None)  # psycopg's cache (private: checked by tests)
        if (
            self.unsafe_rollback
            or kept is None
            or self._pipeline is not None  # it checks its queued statements against the cache
            # A statement failed: psycopg validates a prepared statement only when first
            # prepared, and counts on this rollback to forget one the server now refuses
            # (its plan would change its result type, the search path changed, ...).
            or self.pgconn.transaction_status == TransactionStatus.INERROR
        ):
            super().rollback()  # forgets the prepared statements
            self.unsafe_rollback = False
            return
        # psycopg's rollback, with an empty cache in place of the connection's for it to clear
        # (the pool hands a connection to one thread at a time).
        self._prepared = type(kept)()
        try:
            super().rollback()
        finally:
            self._prepared = kept

    def wait(self, gen: PQGen[T], interval: float = 0.1, timeout: float | None = None) -> T:
        if timeout is not None or self.read_timeout is None:  # psycopg's own bound wins
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.read_timeout)
        except _WaitTimeout as timed_out:
            self.pgconn.finish()  # mid-protocol: unusable; closed, SQLAlchemy discards it
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer within {self.read_timeout:g} s "
                "(DATABASE_READ_TIMEOUT); the connection was closed"
            ) from timed_out


def connector(read_timeout: float | None) -> Callable[..., PgConnection]:
    """A ``do_connect`` listener opening :class:`PgConnection` with ``read_timeout``."""

    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> PgConnection:
        connection = PgConnection.connect(*cargs, **cparams)
        connection.read_timeout = read_timeout
        return connection

    return connect


@contextmanager
def unbounded_reads(connection: Connection) -> Iterator[None]:
    """Lift the read bound of ``connection`` for the block (a migration runs as long as it
    needs); a connection of another driver is left alone."""
    driver: object = connection.connection.dbapi_connection
    if not isinstance(driver, PgConnection):
        yield
        return
    bound = driver.read_timeout
    driver.read_timeout = None
    try:
        yield
    finally:
        driver.read_timeout = bound


def keep_prepared_statements(engine: Engine) -> None:
    """Mark the transactions of ``engine`` (which opens :class:`PgConnection`, see
    :func:`connector`) that run a statement other than a compiled ``select()``, ``insert()``,
    ``update()`` or ``delete()``: DDL, a savepoint, a ``text()`` or ``exec_driver_sql()``
    statement, whatever it says. Their rollback forgets the prepared statements; any other
    rollback keeps them. A statement sent on the driver's own connection is not seen here."""

    def before_cursor_execute(
        _connection: Connection,
        cursor: Any,
        _statement: str,
        _parameters: Any,
        context: ExecutionContext | None,
        _executemany: bool,
    ) -> None:
        compiled = getattr(context, "compiled", None)
        if compiled is None or not isinstance(compiled.statement, _PLAIN):
            cursor.connection.unsafe_rollback = True

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
