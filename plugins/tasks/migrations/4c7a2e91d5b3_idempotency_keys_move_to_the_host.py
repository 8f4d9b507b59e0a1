"""idempotency keys move to the host

The host now runs ``Idempotency-Key`` for every ``@idempotent`` operation, in its own table.
Stored answers of the tasks plugin are not carried over: a client repeating a create within a
day of the upgrade creates it again (keys lived 24 hours).

Revision ID: 4c7a2e91d5b3
Revises: 8b3f1d6c2e90
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4c7a2e91d5b3"
down_revision: str | Sequence[str] | None = "8b3f1d6c2e90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks_idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_idempotency_keys_created_at"))
    op.drop_table("tasks_idempotency_keys")


def downgrade() -> None:
    op.create_table(
        "tasks_idempotency_keys",
        sa.Column("principal", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key", name=op.f("pk_tasks_idempotency_keys")),
    )
    with op.batch_alter_table("tasks_idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tasks_idempotency_keys_created_at"), ["created_at"], unique=False
        )
