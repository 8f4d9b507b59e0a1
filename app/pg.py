"""psycopg specifics: a client-side bound on every wait for PostgreSQL on an open connection,
and read-only transactions that keep psycopg's prepared statements.

libpq bounds opening a connection (``connect_timeout``), the server bounds a statement
(``statement_timeout``), and TCP drops a connection whose peer stopped acknowledging
(keepalives, ``tcp_user_timeout``). Nothing bounds a server that still acknowledges but never
answers: a hung process, a stopped container whose port a proxy keeps open, a proxy that
accepts and forwards nothing. A request on such a connection would wait for as long as the
outage lasts, holding a worker's thread.

:class:`BoundedConnection` is a psycopg connection whose every wait for the server (a query,
its rows, a commit, the pool's ping) gives up after ``read_timeout`` seconds: it closes the
connection (its protocol state is unknown: a late answer must not be read as the next one's)
and raises :class:`psycopg.OperationalError`. SQLAlchemy sees a closed connection, so it
treats the error as a disconnect (the connection leaves the pool) and the host answers a 503
problem with ``Retry-After``. The bound must exceed the statement timeout, so that a slow
statement is cancelled by the server (keeping its connection) before the client gives up.

psycopg prepares a statement on the server once a connection has run it 5 times
(``prepare_threshold``): later runs skip PostgreSQL's parsing and planning. But it forgets every
prepared statement at each rollback (an object it refers to may have gone with the rollback),
and a request that only read used to end its transaction with one (the session's close), so
no statement ever reached its fifth run. :func:`keep_prepared_statements` ends a transaction
that ran only ``select()`` statements with a commit instead, which for a read is the same.

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
from sqlalchemy import Connection, Engine, Select, event
from sqlalchemy.engine import ExecutionContext

T = TypeVar("T")

# In the info of a connection whose transaction ran a statement other than a select(): an
# INSERT, UPDATE or DELETE (the ORM's flushes too), DDL, a text() or driver-level statement,
# whatever it says.
_WROTE = "powerstrip.pg.wrote"


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits at most ``read_timeout`` seconds for the server."""

    read_timeout: float | None = None  # seconds; None: unbounded

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


def connector(read_timeout: float) -> Callable[..., BoundedConnection]:
    """A ``do_connect`` listener opening :class:`BoundedConnection` with ``read_timeout``."""

    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> BoundedConnection:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.read_timeout = read_timeout
        return connection

    return connect


@contextmanager
def unbounded_reads(connection: Connection) -> Iterator[None]:
    """Lift the read bound of ``connection`` for the block (a migration runs as long as it
    needs); a connection of another driver is left alone."""
    driver: object = connection.connection.dbapi_connection
    if not isinstance(driver, BoundedConnection):
        yield
        return
    bound = driver.read_timeout
    driver.read_timeout = None
    try:
        yield
    finally:
        driver.read_timeout = bound


def keep_prepared_statements(engine: Engine) -> None:
    """End each transaction of ``engine`` that ran only ``select()`` statements with a commit
    where SQLAlchemy rolls it back, so psycopg keeps its prepared statements.

    For a transaction that only read, a commit is a rollback: nothing it did stays, its locks
    (``FOR UPDATE``, advisory) go. A statement that is not a compiled ``select()`` (an INSERT,
    UPDATE or DELETE, the ORM's flushes, DDL, a savepoint, a ``text()`` or driver-level
    statement, whatever it says) makes its transaction roll back as before; so does a failed
    statement (the transaction can only roll back). The one thing that reads and yet writes is
    a ``select()`` of a function that writes: leave such a call to a unit of work, which
    commits or rolls back as it says.
    """

    def begin(connection: Connection) -> None:
        connection.info.pop(_WROTE, None)

    def before_cursor_execute(
        connection: Connection,
        _cursor: Any,
        _statement: str,
        _parameters: Any,
        context: ExecutionContext | None,
        _executemany: bool,
    ) -> None:
        compiled = getattr(context, "compiled", None)
        if compiled is None or not isinstance(compiled.statement, Select):
            connection.info[_WROTE] = True

    def rollback(connection: Connection) -> None:
        if connection.invalidated or connection.closed or connection.info.get(_WROTE):
            return
        driver: Any = connection.connection.dbapi_connection
        if driver.info.transaction_status is not TransactionStatus.INTRANS:
            return  # no transaction, or a failed one: the rollback it needs
        try:
            driver.commit()  # then SQLAlchemy's rollback: psycopg skips it, nothing forgotten
        except psycopg.Error:
            # The connection broke: the rollback that follows meets it broken too and is
            # handled as SQLAlchemy always handles a lost connection.
            return

    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "rollback", rollback)
