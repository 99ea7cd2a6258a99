"""Compliance: per-tenant policies (anonymization, retention, external providers, required consents),
user consents, and erasure requests.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compliance_policies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("pii_mode", sa.String(length=8), nullable=False),
        sa.Column("detectors", sa.JSON(), nullable=False),
        sa.Column("phone_region", sa.String(length=2), nullable=True),
        sa.Column("hash_key", sa.String(length=64), nullable=False),
        sa.Column("retention_days", sa.Float(), nullable=True),
        sa.Column("external_providers", sa.JSON(), nullable=False),
        sa.Column("required_consents", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_compliance_policies_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_compliance_policies")),
    )
    op.create_table(
        "user_consents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_user_consents_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_consents_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_consents")),
        sa.UniqueConstraint("user_id", "purpose", name=op.f("uq_user_consents_user_id_purpose")),
    )
    op.create_index(op.f("ix_user_consents_tenant_id"), "user_consents", ["tenant_id"], unique=False)
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("subject_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "done",
                "cancelled",
                name="erasure_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("requested_by", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("execute_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_erasure_requests_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_erasure_requests_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
    )
    op.create_index(
        op.f("ix_erasure_requests_status_execute_after"), "erasure_requests", ["status", "execute_after"], unique=False
    )
    op.create_index(op.f("ix_erasure_requests_tenant_id"), "erasure_requests", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_erasure_requests_tenant_id"), table_name="erasure_requests")
    op.drop_index(op.f("ix_erasure_requests_status_execute_after"), table_name="erasure_requests")
    op.drop_table("erasure_requests")
    op.drop_index(op.f("ix_user_consents_tenant_id"), table_name="user_consents")
    op.drop_table("user_consents")
    op.drop_table("compliance_policies")
