"""Running credit balances: holds and settlements in memory, charges written in batches by the record writer.

:class:`~agentadapter.store.credits.CreditGuard` used to make every call two database transactions on
the tenant's account row (hold, then settle), serialized on that row. The service's guards draw on a
:class:`RunningBalances` instead: each metered tenant's balance and open holds live in this process,
a hold is a check and an addition under a lock (O(1), no I/O), and a settlement computes the charge
with the same rules as before (an overrun charged down to minus the call's own hold, the rest written
off) and hands a ``charge`` record to the :class:`~agentadapter.store.writer.RecordWriter`: journaled
before the call answers, then inserted (``ON CONFLICT (reservation_id) DO NOTHING``) with the account's
``balance_usd`` moved by the charges actually inserted, in one transaction per batch. A charge is
therefore written exactly once, whether it comes from the queue, a spilled segment or the journal of a
process that was killed.

The database stays the truth the running balance is reconciled with, in the writer's thread between
two batches, where it sees exactly the charges committed so far: balance = the account's
``balance_usd`` - the charges settled here and not yet committed. That happens when a tenant is first
metered (its account is read), at once after a grant made in this process (:meth:`RunningBalances.refresh`),
and every ``AGENTADAPTER_CREDIT_RECONCILE_S`` (grants made elsewhere, such as ``agentadapter credits
add``, arrive within that delay). Holds are not written anywhere: a process that dies releases its
holds with it, and its settled charges are in its journal.

One process only: several processes metering the same tenant each from a balance of their own could
together spend it more than once. The service with several processes (Redis) keeps its balances on
Redis (:class:`agentadapter.store.redis_balances.RedisBalances`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.database import Database
from agentadapter.store.models import CreditAccount, CreditTransaction, utcnow
from agentadapter.store.writer import RecordWriter

__all__ = ["ChargeListener", "ChargeSink", "CreditBalances", "RunningBalances", "Settlement", "charge_record"]

logger = logging.getLogger("agentadapter.store.balances")


@dataclass(slots=True, frozen=True)
class Settlement:
    """What settling one hold did to the balance."""

    charge_usd: float
    """What the tenant was charged (the cost, less what was written off)."""
    balance_usd: float
    """The balance after the charge."""
    overrun_usd: float
    collected_usd: float
    """The part of the overrun that was charged."""


def settle_amounts(balance: float, reserved: float, held: float, actual: float) -> tuple[float, float, float]:
    """The charge rules (see :meth:`~agentadapter.store.credits.CreditGuard.settle`): ``(charge, overrun,
    collected)`` for a call that held ``held`` and cost ``actual``, with this hold still in ``reserved``."""
    overrun = max(0.0, actual - held)
    available = balance - reserved  # this hold counted
    collected = min(overrun, max(0.0, available + held))
    return actual - overrun + collected, overrun, collected


def charge_record(tenant_id: uuid.UUID, reservation_id: uuid.UUID, settlement: Settlement, held_usd: float,
                  actual_usd: float, details: Mapping[str, Any], description: str) -> dict[str, Any]:
    """A charge as the journal keeps it (an overrun's amounts added to its details)."""
    details = dict(details)
    if settlement.overrun_usd > 0:
        details.update(overrun_usd=settlement.overrun_usd,
                       uncollected_usd=settlement.overrun_usd - settlement.collected_usd,
                       held_usd=held_usd, cost_usd=actual_usd)
    return {"id": os.urandom(16).hex(), "tn": tenant_id.hex, "r": reservation_id.hex, "a": -settlement.charge_usd,
            "b": settlement.balance_usd, "h": held_usd, "d": details, "s": description, "ts": time.time()}


class CreditBalances(Protocol):
    """Running balances the credit guards draw on: :class:`RunningBalances` (one process) or
    :class:`~agentadapter.store.redis_balances.RedisBalances` (several)."""

    async def available(self, tenant_id: uuid.UUID) -> tuple[float, float] | None:
        """``(balance, reserved)`` of the tenant, or None when it has no account."""
        ...

    async def has_account(self, tenant_id: uuid.UUID) -> bool: ...

    async def hold(self, tenant_id: uuid.UUID, amount_usd: float) -> tuple[float, float] | None:
        """Hold ``amount_usd``: None when held, else ``(balance, reserved)`` as they stood; raises
        :class:`LookupError` when the tenant has no account."""
        ...

    async def settle(self, tenant_id: uuid.UUID, reservation_id: uuid.UUID, held_usd: float, actual_usd: float,
                     details: Mapping[str, Any], description: str = "") -> Settlement | None:
        """Charge ``actual_usd`` against the hold and journal the charge; None when the account is gone."""
        ...

    async def refresh(self, tenant_ids: Sequence[uuid.UUID]) -> None:
        """Take what the database has (a grant) into these tenants' balances."""
        ...

    async def caught_up(self) -> None:
        """Wait until the balances have taken the charges the writer has committed so far."""
        ...


class ChargeListener(Protocol):
    """Told by the :class:`ChargeSink` what the writer committed."""

    def committed(self, records: Sequence[Mapping[str, Any]], charged_totals: Mapping[uuid.UUID, float]) -> None:
        """These charge records are committed; ``charged_totals`` (when the sink was asked for them) is each
        affected account's ``charged_usd`` - all its charges ever - as of that commit."""
        ...


class ChargeSink:
    """Writes journaled charges (the writer's ``charge`` kind) and moves the accounts' balances (and their
    running total of charges, ``charged_usd``) by the charges inserted, in the writer's transaction."""

    def __init__(self, balances: ChargeListener | None = None, *, totals: bool = False) -> None:
        self.balances = balances
        self.totals = totals
        """Read the accounts' ``charged_usd`` back in the transaction, for :meth:`ChargeListener.committed`."""
        self._charged: dict[uuid.UUID, float] = {}

    async def write(self, session: AsyncSession, records: Sequence[Mapping[str, Any]]) -> None:
        self._charged = {}
        rows: list[dict[str, Any]] = [{
            "id": uuid.UUID(r["id"]), "tenant_id": uuid.UUID(r["tn"]), "kind": "charge", "amount_usd": float(r["a"]),
            "balance_after_usd": float(r["b"]), "reservation_id": uuid.UUID(r["r"]), "reserved_usd": float(r["h"]),
            "description": str(r.get("s") or ""), "details": dict(r.get("d") or {}), "actor": None,
            "created_at": datetime.fromtimestamp(float(r["ts"]), UTC),
        } for r in records]
        tenants = {row["tenant_id"] for row in rows}
        known = set((await session.scalars(
            sa.select(CreditAccount.tenant_id).where(CreditAccount.tenant_id.in_(tenants)))).all())
        if len(known) < len(tenants):
            gone = [row for row in rows if row["tenant_id"] not in known]
            logger.warning("%d charge(s) of $%.6f in all name credit accounts that no longer exist (%s); not charged",
                           len(gone), -sum(float(row["amount_usd"]) for row in gone),
                           ", ".join(sorted({str(row["tenant_id"]) for row in gone}))[:300])
            rows = [row for row in rows if row["tenant_id"] in known]
        if not rows:
            return
        insert: Any = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        # One statement for every batch, executed with the rows as parameters (SQLAlchemy's "insertmanyvalues"):
        # compiled once and cached. A VALUES clause built from the rows was compiled anew for every batch,
        # which cost more than everything else a credited call does.
        transactions = CreditTransaction.__table__
        statement = (insert(transactions).on_conflict_do_nothing(index_elements=["reservation_id"])
                     .returning(transactions.c.tenant_id, transactions.c.amount_usd))
        moved: dict[uuid.UUID, float] = {}
        for tenant_id, amount in (await session.execute(statement, rows)).all():
            moved[tenant_id] = moved.get(tenant_id, 0.0) + float(amount)
        if not moved:
            return  # every charge was in already (a replayed journal): no balance moves
        accounts: sa.Table = CreditAccount.__table__  # type: ignore[assignment]  # declarative: a Table
        await session.execute(
            sa.update(accounts).where(accounts.c.tenant_id == sa.bindparam("account"))
            .values(balance_usd=accounts.c.balance_usd + sa.bindparam("moved"),
                    charged_usd=accounts.c.charged_usd - sa.bindparam("moved"), updated_at=sa.bindparam("now")),
            [{"account": tenant_id, "moved": amount, "now": utcnow()} for tenant_id, amount in moved.items()])
        if self.totals:
            # Read in the transaction that moved them: the totals include this batch and every batch committed
            # before it (PostgreSQL: the rows are locked by the UPDATE above until the commit).
            self._charged = {tenant_id: float(total) for tenant_id, total in await session.execute(
                sa.select(accounts.c.tenant_id, accounts.c.charged_usd).where(accounts.c.tenant_id.in_(moved)))}

    def committed(self, records: Sequence[Mapping[str, Any]]) -> None:
        charged, self._charged = self._charged, {}
        if self.balances is not None:
            self.balances.committed(records, charged)


class _Account:
    __slots__ = ("balance", "reserved", "unwritten")

    def __init__(self, balance: float) -> None:
        self.balance = balance
        self.reserved = 0.0
        self.unwritten = 0.0
        """Charges settled here and not yet committed (already taken off ``balance``)."""


_UNKNOWN = object()


class RunningBalances:
    """The running balances of this process's metered tenants (see the module docstring)."""

    def __init__(self, writer: RecordWriter, *, reconcile_s: float = 5.0) -> None:
        self.writer = writer
        self._accounts: dict[uuid.UUID, _Account | None] = {}  # None: known to have no account
        self._pending: dict[str, tuple[uuid.UUID, float]] = {}  # reservation (hex) -> (tenant, charge)
        self._lock = threading.Lock()
        self._loading: dict[uuid.UUID, asyncio.Future[None]] = {}
        writer.register("charge", ChargeSink(self))
        if reconcile_s > 0:
            writer.every(reconcile_s, self._reconcile_all)

    # --------------------------------------------------------------------------------------- reads

    async def available(self, tenant_id: uuid.UUID) -> tuple[float, float] | None:
        """``(balance, reserved)`` of the tenant, or None when it has no account."""
        account = await self._account(tenant_id)
        if account is None:
            return None
        with self._lock:
            return account.balance, account.reserved

    async def has_account(self, tenant_id: uuid.UUID) -> bool:
        return await self._account(tenant_id) is not None

    async def _account(self, tenant_id: uuid.UUID) -> _Account | None:
        found = self._accounts.get(tenant_id, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        loading = self._loading.get(tenant_id)
        if loading is None:
            loading = self._loading[tenant_id] = asyncio.get_running_loop().create_future()
            try:
                await self.refresh([tenant_id])
            finally:
                self._loading.pop(tenant_id, None)
                if not loading.done():
                    loading.set_result(None)
        else:
            await asyncio.shield(loading)
        return self._accounts.get(tenant_id)

    # ------------------------------------------------------------------------------- hold and settle

    async def hold(self, tenant_id: uuid.UUID, amount_usd: float) -> tuple[float, float] | None:
        """Hold ``amount_usd``: returns None when held, else ``(balance, reserved)`` as they stood.
        Raises :class:`LookupError` when the tenant has no account."""
        account = self._accounts.get(tenant_id)
        if account is None:
            account = await self._account(tenant_id)
            if account is None:
                raise LookupError(tenant_id)
        with self._lock:
            if account.balance - account.reserved >= amount_usd:
                account.reserved += amount_usd
                return None
            return account.balance, account.reserved

    async def settle(self, tenant_id: uuid.UUID, reservation_id: uuid.UUID, held_usd: float, actual_usd: float,
                     details: Mapping[str, Any], description: str = "") -> Settlement | None:
        """Charge ``actual_usd`` against the hold, in memory, and journal the charge; None when the
        tenant's account is gone."""
        with self._lock:
            account = self._accounts.get(tenant_id)
            if account is None:
                return None
            if reservation_id.hex in self._pending:
                # Settled already and not yet written; once written, the database skips a second charge
                # of the same reservation and the next reconciliation undoes it here.
                return Settlement(0.0, account.balance, 0.0, 0.0)
            charge, overrun, collected = settle_amounts(account.balance, account.reserved, held_usd, actual_usd)
            account.balance -= charge
            reserved = account.reserved - held_usd
            account.reserved = reserved if reserved > 1e-12 else 0.0
            account.unwritten += charge
            settlement = Settlement(charge, account.balance, overrun, collected)
            record = charge_record(tenant_id, reservation_id, settlement, held_usd, actual_usd, details, description)
            self._pending[record["r"]] = (tenant_id, charge)
            # Submitted under our lock, so the journal's order is the order the balance moved in.
            self.writer.submit("charge", record)
        return settlement

    def committed(self, records: Sequence[Mapping[str, Any]], charged_totals: Mapping[uuid.UUID, float]) -> None:
        """The writer committed these charges: they are in the accounts' balances now."""
        with self._lock:
            for record in records:
                pending = self._pending.pop(str(record["r"]), None)
                if pending is None:
                    continue  # replayed from a journal of another process, or already counted
                account = self._accounts.get(pending[0])
                if account is not None:
                    account.unwritten -= pending[1]

    # ----------------------------------------------------------------------------------- reconcile

    async def caught_up(self) -> None:
        return None  # the writer's commit callback moves these balances itself

    async def refresh(self, tenant_ids: Sequence[uuid.UUID]) -> None:
        """Read these tenants' accounts again (after a grant): balance = the database's less what is
        settled here and not yet written."""
        wanted = list(tenant_ids)
        await self.writer.call(lambda db: self._reconcile(db, wanted))

    async def _reconcile_all(self, db: Database) -> None:
        with self._lock:
            known = list(self._accounts)
        if known:
            await self._reconcile(db, known)

    async def _reconcile(self, db: Database, tenant_ids: Sequence[uuid.UUID]) -> None:
        # Runs in the writer's thread between batches: the rows read include every committed charge and
        # none of the ones still queued, which are exactly the accounts' ``unwritten``.
        balances: dict[uuid.UUID, float] = {}
        async with db.session() as session:
            for start in range(0, len(tenant_ids), 500):
                chunk = tenant_ids[start:start + 500]
                rows = await session.execute(sa.select(CreditAccount.tenant_id, CreditAccount.balance_usd)
                                             .where(CreditAccount.tenant_id.in_(chunk)))
                balances.update((tenant_id, float(balance)) for tenant_id, balance in rows)
        with self._lock:
            for tenant_id in tenant_ids:
                stored = balances.get(tenant_id)
                account = self._accounts.get(tenant_id)
                if stored is None:
                    self._accounts[tenant_id] = None
                    continue
                if account is None:
                    self._accounts[tenant_id] = _Account(stored)
                    continue
                balance = stored - account.unwritten
                if not math.isclose(balance, account.balance, rel_tol=0.0, abs_tol=1e-9):
                    logger.info("credit balance of tenant %s reconciled with the database: $%.6f -> $%.6f",
                                tenant_id, account.balance, balance,
                                extra={"event": "credits.reconciled", "tenant": str(tenant_id)})
                    account.balance = balance
