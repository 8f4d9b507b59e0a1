"""task pages by project and id: one index a keyset page reads in order

Revision ID: c3e8a4f1b2d7
Revises: b51e7c3a9d02
Create Date: 2026-11-29 03:50:00.000000

The index is built in the migration's transaction, where the host lifts the statement
timeout; PostgreSQL blocks writes to the table while it builds. On a table too large for that,
build it beforehand without blocking (``CREATE INDEX CONCURRENTLY ix_tasks_tasks_project_id_id
ON tasks_tasks (project_id, id)``): the migration then finds it and only drops the old one.
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


def upgrade() -> None:
    # (project_id, id) replaces (project_id): it serves every look-up by project too.
    op.create_index(BY_PROJECT_AND_ID, TABLE, ["project_id", "id"], if_not_exists=True)
    op.drop_index(BY_PROJECT, table_name=TABLE, if_exists=True)


def downgrade() -> None:
    op.create_index(BY_PROJECT, TABLE, ["project_id"], if_not_exists=True)
    op.drop_index(BY_PROJECT_AND_ID, table_name=TABLE, if_exists=True)
