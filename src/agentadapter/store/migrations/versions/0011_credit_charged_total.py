"""Credit accounts keep the running total of their charges (``charged_usd``), backfilled from the charges
recorded so far: balances kept on Redis take the charges they have not seen from it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credit_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("charged_usd", sa.Float(), nullable=False, server_default=sa.text("0")))
    op.execute(
        "UPDATE credit_accounts SET charged_usd = COALESCE((SELECT -SUM(t.amount_usd) FROM credit_transactions t "
        "WHERE t.tenant_id = credit_accounts.tenant_id AND t.kind = 'charge'), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("credit_accounts", schema=None) as batch_op:
        batch_op.drop_column("charged_usd")
