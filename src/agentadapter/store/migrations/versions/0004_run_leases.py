"""Run leases: the server process executing an inline run holds a lease on it, renewed while it runs.

A run whose lease expired (its process was killed, or lost the database for longer than the lease)
is ended by any other server process's reaper. Runs of the Celery executor have no lease (their
steps do): both columns stay NULL for them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_status_lease_until"), ["status", "lease_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_status_lease_until"))
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
