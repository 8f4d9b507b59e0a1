"""ids are 64-bit

``Mapped[int]`` columns are BIGINT (the SDK's Model maps ``int`` so): an id the API's routes
accept (up to 2**63 - 1) always fits its column. PostgreSQL widens the columns and their
sequences in place; SQLite's INTEGER is already 64-bit, nothing changes there.

Revision ID: b51e7c3a9d02
Revises: 4c7a2e91d5b3
Create Date: 2026-11-28 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b51e7c3a9d02"
down_revision: str | Sequence[str] | None = "4c7a2e91d5b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Referenced columns first (a foreign key follows its key), then the columns that refer.
COLUMNS = (
    ("tasks_projects", "id"),
    ("tasks_tasks", "id"),
    ("tasks_activity", "id"),
    ("tasks_members", "project_id"),
    ("tasks_tasks", "project_id"),
    ("tasks_activity", "project_id"),
)
SEQUENCES = ("tasks_projects_id_seq", "tasks_tasks_id_seq", "tasks_activity_id_seq")


def _widen(to: sa.types.TypeEngine[int], sequence_type: str) -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=to, existing_nullable=False)
    if dialect == "postgresql":
        for sequence in SEQUENCES:
            op.execute(f"ALTER SEQUENCE {sequence} AS {sequence_type}")


def upgrade() -> None:
    _widen(sa.BigInteger(), "bigint")


def downgrade() -> None:
    # Fails if an id beyond 2**31 - 1 exists: such a row cannot be kept in the old columns.
    _widen(sa.Integer(), "integer")
