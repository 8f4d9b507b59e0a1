"""record when a refresh token's family logged in

Revision ID: 9c4d7e1f2a63
Revises: 5e0c2a7b9d41
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c4d7e1f2a63"
down_revision: str | Sequence[str] | None = "5e0c2a7b9d41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Nullable and not back-filled: when an existing family logged in is unknown, so its access
# tokens carry no auth_time and count as an old login (minting an API key asks for a new one).


def upgrade() -> None:
    with op.batch_alter_table("accounts_refresh_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("authenticated_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    # SQLite copies the table to drop a column: the copy keeps AUTOINCREMENT (5e0c2a7b9d41).
    with op.batch_alter_table(
        "accounts_refresh_tokens", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("authenticated_at")
