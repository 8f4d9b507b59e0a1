"""ids are 64-bit

``Mapped[int]`` columns are BIGINT (the SDK's Model maps ``int`` so): an id the API's routes
accept (up to 2**63 - 1) always fits its column. PostgreSQL widens the columns and their
sequences in place; SQLite's INTEGER is already 64-bit, nothing changes there.

Revision ID: f0a8d3b6c915
Revises: 9c4d7e1f2a63
Create Date: 2026-11-28 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f0a8d3b6c915"
down_revision: str | Sequence[str] | None = "9c4d7e1f2a63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Referenced columns first (a foreign key follows its key), then the columns that refer.
COLUMNS = (
    ("accounts_users", "id"),
    ("accounts_refresh_tokens", "id"),
    ("accounts_api_keys", "id"),
    ("accounts_refresh_tokens", "user_id"),
    ("accounts_api_keys", "user_id"),
)
SEQUENCES = (
    "accounts_users_id_seq",
    "accounts_refresh_tokens_id_seq",
    "accounts_api_keys_id_seq",
)


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
