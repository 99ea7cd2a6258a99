"""Conversations and approvals: the threads table, and runs that pause for human approval (status ``paused``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
_NEW_STATUSES = ("queued", "running", "paused", "completed", "failed", "cancelled")


def _status(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="run_status", native_enum=False, create_constraint=True, length=16)


def _set_statuses(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The status is a VARCHAR with a CHECK constraint (no native enum): replace the constraint.
        op.drop_constraint(op.f("ck_runs_run_status"), "runs", type_="check")
        allowed = ", ".join(f"'{v}'" for v in new)
        op.create_check_constraint(op.f("ck_runs_run_status"), "runs", sa.text(f"status IN ({allowed})"))
        return
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("runs", schema=None, recreate="always") as batch_op:
        batch_op.alter_column("status", existing_type=_status(old), type_=_status(new), existing_nullable=False)


def upgrade() -> None:
    _set_statuses(_OLD_STATUSES, _NEW_STATUSES)
    op.create_table(
        "threads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("compaction", sa.JSON(), nullable=False),
        sa.Column("compactions", sa.Integer(), nullable=False),
        sa.Column("active_run_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["active_run_id"], ["runs.id"], name=op.f("fk_threads_active_run_id_runs"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["agent_id"], ["agent_definitions.id"],
                                name=op.f("fk_threads_agent_id_agent_definitions"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_threads_created_by_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_threads_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threads")),
    )
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_threads_tenant_id_created_at"), ["tenant_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_threads_tenant_id_created_at"))
    op.drop_table("threads")
    # Paused runs cannot be kept under the old statuses: they end as cancelled.
    op.execute(sa.text("UPDATE runs SET status = 'cancelled' WHERE status = 'paused'"))
    _set_statuses(_NEW_STATUSES, _OLD_STATUSES)
