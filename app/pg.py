"""A client-side bound on every wait for PostgreSQL on an open connection.

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

Imported only for a PostgreSQL engine (psycopg is not loaded for SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.errors import _WaitTimeout
from sqlalchemy import Connection

T = TypeVar("T")


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
