"""Alembic environment owned by the host: the app's engine, the shared metadata, and only the
host's tables and the enabled plugins' (or one plugin's, with ``-x plugin=NAME``; the host's,
with ``-x plugin=host``)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from alembic import context
from flask import current_app

from app.migrations import MIGRATIONS, MigrationSettings, render_item
from app.pg import unbounded_reads
from powerstrip.db import Model

settings: MigrationSettings = current_app.extensions[MIGRATIONS]
prefixes = settings.table_prefixes(context.get_x_argument(as_dictionary=True).get("plugin"))


def include_object(
    obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any
) -> bool:
    """Compare only the tables in scope (never another app's tables)."""
    if type_ == "table":
        return bool(name) and str(name).startswith(prefixes)
    table = getattr(obj, "table", None)
    return table is None or str(table.name).startswith(prefixes)


def run_offline() -> None:
    context.configure(
        url=settings.database.engine.url.render_as_string(hide_password=False),
        target_metadata=Model.metadata,
        include_object=include_object,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = settings.database.engine
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # SQLite changes a table by copying it (batch mode); with foreign keys on, dropping
            # the old copy would cascade to (or fail on) the rows that refer to it. SQLite's own
            # procedure: keys off, change, check, keys on. The pragma works outside a
            # transaction only, hence the commit.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Model.metadata,
                include_object=include_object,
                compare_type=True,  # types as compiled for the database: an SDK type as its impl
                render_item=render_item,  # SDK types as plain SQLAlchemy: revisions need only sa
                render_as_batch=sqlite,  # SQLite cannot ALTER much
            )
            with context.begin_transaction(), ExitStack() as lifted:
                if engine.dialect.name == "postgresql":
                    # DATABASE_STATEMENT_TIMEOUT and _READ_TIMEOUT guard requests; a migration
                    # (an index on a big table) runs as long as it needs. LOCAL: this
                    # transaction only, so the pooled connection (or a PgBouncer server
                    # connection) keeps the limit; the client's bound is restored after.
                    connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
                    lifted.enter_context(unbounded_reads(connection))
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
