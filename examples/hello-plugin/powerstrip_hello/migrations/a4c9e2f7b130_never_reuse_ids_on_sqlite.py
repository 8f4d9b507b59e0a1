"""never reuse ids on SQLite (AUTOINCREMENT)

Revision ID: a4c9e2f7b130
Revises: d7d0715d3738
Create Date: 2026-11-28 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "a4c9e2f7b130"
down_revision: str | Sequence[str] | None = "d7d0715d3738"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The plugin's tables with an integer id: SQLite must never hand a deleted row's id out again
# (a client may still hold it). PostgreSQL sequences never do: nothing changes there.
TABLES = ("hello_greetings",)


def _recreate(autoincrement: bool) -> None:
    context = op.get_context()
    if context.dialect.name != "sqlite" or context.as_sql:
        return  # offline SQL for SQLite cannot copy tables it cannot reflect: run it online
    for table in TABLES:
        # Copies the rows into a new table (the host runs SQLite migrations with foreign
        # keys off, so the copy cascades nothing).
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _recreate(autoincrement=True)


def downgrade() -> None:
    _recreate(autoincrement=False)
