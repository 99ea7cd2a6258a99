"""Credit accounts for the store's tests: fund one, read back its balance and charges."""

from __future__ import annotations

import sqlalchemy as sa

from agentadapter.store import credits
from agentadapter.store.database import Database
from agentadapter.store.models import CreditTransaction, Tenant


async def fund(db: Database, tenant: Tenant, amount: float) -> None:
    async with db.writer() as session:
        await credits.grant(session, tenant.id, amount, actor="test")


async def stored(db: Database, tenant: Tenant) -> tuple[float, list[float]]:
    """The account's balance and its charges, as the database has them."""
    async with db.session() as session:
        account = await credits.account(session, tenant.id)
        charged = (await session.scalars(sa.select(CreditTransaction.amount_usd).where(
            CreditTransaction.tenant_id == tenant.id, CreditTransaction.kind == "charge"))).all()
    assert account is not None
    return account.balance_usd, list(charged)
