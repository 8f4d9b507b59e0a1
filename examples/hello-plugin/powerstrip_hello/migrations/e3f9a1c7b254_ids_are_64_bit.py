"""ids are 64-bit

``Mapped[int]`` columns are BIGINT (the SDK's Model maps ``int`` so): an id the API's routes
accept (up to 2**63 - 1) always fits its column. PostgreSQL widens the column and its sequence
in place; SQLite's INTEGER is already 64-bit, nothing changes there.

Revision ID: e3f9a1c7b254
Revises: a4c9e2f7b130
Create Date: 2026-11-28 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3f9a1c7b254"
down_revision: str | Sequence[str] | None = "a4c9e2f7b130"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _widen(to: sa.types.TypeEngine[int], sequence_type: str) -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        return
    op.alter_column("hello_greetings", "id", type_=to, existing_nullable=False)
    if dialect == "postgresql":
        op.execute(f"ALTER SEQUENCE hello_greetings_id_seq AS {sequence_type}")


def upgrade() -> None:
    _widen(sa.BigInteger(), "bigint")


def downgrade() -> None:
    # Fails if an id beyond 2**31 - 1 exists: such a row cannot be kept in the old column.
    _widen(sa.Integer(), "integer")
