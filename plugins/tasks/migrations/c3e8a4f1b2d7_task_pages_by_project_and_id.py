"""task pages by project and id: one index a keyset page reads in order

Revision ID: c3e8a4f1b2d7
Revises: b51e7c3a9d02
Create Date: 2026-11-29 03:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "c3e8a4f1b2d7"
down_revision: str | Sequence[str] | None = "b51e7c3a9d02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "tasks_tasks"
BY_PROJECT = "ix_tasks_tasks_project_id"
BY_PROJECT_AND_ID = "ix_tasks_tasks_project_id_id"


def _swap(create: str, columns: list[str], drop: str) -> None:
    # PostgreSQL builds and drops the index without blocking writes to the table (outside a
    # transaction, as CONCURRENTLY requires); SQLite's is a plain statement.
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(create, TABLE, columns, postgresql_concurrently=True)
            op.drop_index(drop, table_name=TABLE, postgresql_concurrently=True)
        return
    op.create_index(create, TABLE, columns)
    op.drop_index(drop, table_name=TABLE)


def upgrade() -> None:
    # (project_id, id) replaces (project_id): it serves every look-up by project too.
    _swap(BY_PROJECT_AND_ID, ["project_id", "id"], BY_PROJECT)


def downgrade() -> None:
    _swap(BY_PROJECT, ["project_id"], BY_PROJECT_AND_ID)
