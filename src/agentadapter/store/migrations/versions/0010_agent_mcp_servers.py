"""Stored agents name MCP servers: the ``mcp_servers`` column of agent definitions (streamable-HTTP servers
whose tools the agent uses; a list of ``{name, url, headers, tools, exclude, ...}``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agent_definitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mcp_servers", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("agent_definitions", schema=None) as batch_op:
        batch_op.drop_column("mcp_servers")
