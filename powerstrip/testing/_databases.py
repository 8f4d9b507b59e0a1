"""The kit's databases: one per set of enabled plugins, migrated once, every test rolled back.

SQLite files by default; on PostgreSQL the kit creates databases on the server it is given and
drops them when they are no longer needed. SQLAlchemy is imported when a test first needs a
database, never when pytest loads the kit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy import Connection, Engine

PREFIX = "powerstrip_kit_"  # every database the kit creates is named so


class Database(Protocol):
    """What the kit uses of the host's ``app.db.Database``."""

    engine: Engine

    def use_connection(self, connection: Connection) -> None: ...


class Databases:
    """A test session's databases: one per set of enabled plugins, and fresh ones on demand.

    :param server: a PostgreSQL URL to connect to and create databases next to; None: SQLite
    :param directory: where the SQLite files go
    """

    def __init__(self, server: str | None, directory: Path) -> None:
        self._server = server
        self._directory = directory
        self._admin: Engine | None = None
        self._shared: dict[tuple[str, ...], str] = {}
        self.migrated: set[str] = set()
        """The URLs already migrated (``db upgrade``) in this session."""

    def shared(self, plugins: Sequence[str]) -> str:
        """The URL of the session's database for these plugins, created on first use.

        One per set: Alembic refuses a database whose revisions it cannot find, which a
        database migrated for more plugins would have.
        """
        key = tuple(sorted(set(plugins)))
        if key not in self._shared:
            self._shared[key] = self._create()
        return self._shared[key]

    @contextmanager
    def fresh(self) -> Iterator[str]:
        """An empty database of its own (its URL), dropped afterwards."""
        url = self._create()
        try:
            yield url
        finally:
            self._drop(url)

    def close(self) -> None:
        """Drop every database the session still has."""
        for url in self._shared.values():
            self._drop(url)
        if self._admin is not None:
            self._admin.dispose()

    def _create(self) -> str:
        name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
        if self._server is None:
            return f"sqlite:///{self._directory / name}.db"
        from sqlalchemy import text  # noqa: PLC0415 - loaded when a test needs a database
        from sqlalchemy.engine import make_url  # noqa: PLC0415

        with self._connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return make_url(self._server).set(database=name).render_as_string(hide_password=False)

    def _drop(self, url: str) -> None:
        if self._server is None:
            return  # a file in pytest's temporary directory, which pytest cleans
        from sqlalchemy import text  # noqa: PLC0415
        from sqlalchemy.engine import make_url  # noqa: PLC0415

        with self._connect() as connection:
            database = make_url(url).database
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))

    def _connect(self) -> Connection:
        if self._admin is None:
            from sqlalchemy import create_engine  # noqa: PLC0415

            self._admin = create_engine(str(self._server), isolation_level="AUTOCOMMIT")
        return self._admin.connect()


def upgrade(app: Flask) -> None:
    """``flask db upgrade``: the host's tables and the enabled plugins' to their heads."""
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    if result.exit_code != 0:
        pytest.fail(f"db upgrade failed ({result.exception!r}):\n{result.output}", pytrace=False)


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction rolled back at the end: hand it to ``use_connection``."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # pysqlite starts no transaction before a SAVEPOINT, so releasing the app's
            # outermost savepoint would commit: on this connection the kit says BEGIN itself.
            driver: Any = connection.connection.driver_connection
            driver.isolation_level = None
            transaction = connection.begin()
            connection.exec_driver_sql("BEGIN")
        else:
            transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()
