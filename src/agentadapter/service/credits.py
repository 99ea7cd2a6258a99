"""Credit grants: the one audited write that funds a tenant, for ``POST /v1/credits/grants`` and
``agentadapter credits add`` alike.

A grant adds USD to the tenant's balance (opening its account on the first one, after which its LLM
calls draw on it), records who granted it (the transaction's ``actor`` and the audit entry) in one
transaction, and drops the tenant's cached facade where there is one, so this process meters the
tenant from its next call (other processes within ``AGENTADAPTER_AUTH_CACHE_S``). Where the service
keeps running balances, the grant reaches this process's at once (others' within
``AGENTADAPTER_CREDIT_RECONCILE_S``), and the balance answered is the running one. Who may grant is
the face's to check: an operator's key or the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.common import Caller, record
from agentadapter.service.tenancy import TenantLLMs
from agentadapter.store import credits as credit_store
from agentadapter.store.models import CreditAccount, CreditTransaction

__all__ = ["CreditGrant", "charges_written", "credit_balance", "grant_credits"]


@dataclass(frozen=True, slots=True)
class CreditGrant:
    """The grant's transaction and the balance it leaves."""

    transaction: CreditTransaction
    balance_usd: float
    reserved_usd: float

    @property
    def available_usd(self) -> float:
        return self.balance_usd - self.reserved_usd


async def grant_credits(session: AsyncSession, caller: Caller, amount_usd: float, description: str = "", *,
                        facades: TenantLLMs | None = None) -> CreditGrant:
    """Grant ``amount_usd`` to the caller's tenant, audited, and commit."""
    entry = await credit_store.grant(session, caller.tenant_id, amount_usd, actor=caller.principal.subject,
                                     description=description)
    await record(session, caller, "credits.grant", "credit_transaction", entry.id,
                 {"amount_usd": amount_usd, "description": description,
                  "balance_after_usd": entry.balance_after_usd})
    account = await credit_store.account(session, caller.tenant_id)
    await session.commit()
    assert account is not None  # the grant has just opened it
    balance, reserved = account.balance_usd, account.reserved_usd
    if facades is not None:
        facades.invalidate(caller.tenant_id)  # metered from its next call on
        if facades.balances is not None:
            # The running balance takes the grant at once (charges not yet written are still counted).
            await facades.balances.refresh([caller.tenant_id])
            running = await facades.balances.available(caller.tenant_id)
            if running is not None:
                balance, reserved = running
    return CreditGrant(entry, balance, reserved)


async def credit_balance(account: CreditAccount | None, facades: TenantLLMs | None) -> tuple[float, float]:
    """``(balance, reserved)`` of a tenant's account as calls see it: the running balance where the
    service keeps one (the database's lags it by the charges not yet written, and holds no holds)."""
    if account is None:
        return 0.0, 0.0
    if facades is not None and facades.balances is not None:
        running = await facades.balances.available(account.tenant_id)
        if running is not None:
            return running
    return account.balance_usd, account.reserved_usd


async def charges_written(facades: TenantLLMs | None) -> None:
    """Wait until the charges (and usage records) of calls finished so far are in the database."""
    if facades is not None:
        await facades.base.ledger.flush()
        if facades.balances is not None:
            await facades.balances.caught_up()  # on Redis: until the balance has taken the charges written
