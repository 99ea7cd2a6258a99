"""Running credit balances on Redis, for a service of several processes (``--workers N``, Celery workers).

The same rules as :class:`~agentadapter.store.balances.RunningBalances` (hold what is available, charge
an overrun only down to minus the call's own hold), made atomic across processes by Lua scripts on one
hash per tenant, ``<prefix>:credits:<tenant>``: ``balance``, ``reserved`` (open holds), and ``ext_sum`` /
``ext_n``, the sum and number of the account's non-charge transactions (grants, adjustments) already in
``balance``. A hold is one script call (one round trip); a settlement is one more, and its charge goes
to the :class:`~agentadapter.store.writer.RecordWriter` (journaled before the call answers, written in
batches, moved into the account's ``balance_usd`` exactly once), as in one process.

Reconciliation never races the charges in flight: it carries only what the database has that Redis
has not - grants. The script adds ``sum(non-charge amounts) - ext_sum`` to the balance when the
database has more such transactions than ``ext_n`` (the count only grows, so a slower reader never
undoes a newer one). A grant made in this process reconciles its tenant at once; grants from elsewhere
(``agentadapter credits add``) arrive within ``AGENTADAPTER_CREDIT_RECONCILE_S``. A tenant's hash is
loaded from its account when missing (first use, or Redis lost its data: then the balance is the
database's, which lags by the charges still in the writers' queues, at most a second or so of calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from agentadapter.store.balances import ChargeSink, Settlement, charge_record
from agentadapter.store.database import Database
from agentadapter.store.models import CreditAccount, CreditTransaction
from agentadapter.store.writer import RecordWriter

__all__ = ["RedisBalances"]

logger = logging.getLogger("agentadapter.store.redis_balances")

_HOLD = """
local state = redis.call('HMGET', KEYS[1], 'balance', 'reserved')
if not state[1] then return {-1} end
local balance = tonumber(state[1])
local reserved = tonumber(state[2]) or 0
local amount = tonumber(ARGV[1])
if balance - reserved >= amount then
  redis.call('HSET', KEYS[1], 'reserved', string.format('%.17g', reserved + amount))
  return {1}
end
return {0, state[1], string.format('%.17g', reserved)}
"""

_SETTLE = """
local state = redis.call('HMGET', KEYS[1], 'balance', 'reserved')
if not state[1] then return {-1} end
local balance = tonumber(state[1])
local reserved = tonumber(state[2]) or 0
local held = tonumber(ARGV[1])
local actual = tonumber(ARGV[2])
local overrun = math.max(0, actual - held)
local collected = math.min(overrun, math.max(0, balance - reserved + held))
local charge = actual - overrun + collected
balance = balance - charge
reserved = reserved - held
if reserved < 1e-12 then reserved = 0 end
redis.call('HSET', KEYS[1], 'balance', string.format('%.17g', balance), 'reserved', string.format('%.17g', reserved))
return {1, string.format('%.17g', charge), string.format('%.17g', balance), string.format('%.17g', overrun),
        string.format('%.17g', collected)}
"""

_LOAD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'reserved', '0', 'ext_sum', ARGV[2], 'ext_n', ARGV[3])
return 1
"""

_RECONCILE = """
local state = redis.call('HMGET', KEYS[1], 'balance', 'ext_sum', 'ext_n')
if not state[1] then return 0 end
local count = tonumber(ARGV[2])
if count <= (tonumber(state[3]) or 0) then return 0 end
local total = tonumber(ARGV[1])
local balance = tonumber(state[1]) + total - (tonumber(state[2]) or 0)
redis.call('HSET', KEYS[1], 'balance', string.format('%.17g', balance), 'ext_sum', ARGV[1], 'ext_n', ARGV[2])
return 1
"""


class RedisBalances:
    """The running balances of every process of the service, on Redis (see the module docstring)."""

    def __init__(self, db: Database, writer: RecordWriter, client: Any, *, prefix: str = "agentadapter",
                 reconcile_s: float = 5.0) -> None:
        self.db = db
        self.writer = writer
        self.client = client
        self.prefix = f"{prefix}:credits:"
        self.reconcile_s = reconcile_s
        self._hold = client.register_script(_HOLD)
        self._settle = client.register_script(_SETTLE)
        self._load = client.register_script(_LOAD)
        self._reconcile = client.register_script(_RECONCILE)
        self._without_account: dict[uuid.UUID, float] = {}  # tenant -> when it was found to have none
        self._known: set[uuid.UUID] = set()
        writer.register("charge", ChargeSink())

    def _key(self, tenant_id: uuid.UUID) -> str:
        return self.prefix + tenant_id.hex

    # --------------------------------------------------------------------------------------- reads

    async def available(self, tenant_id: uuid.UUID) -> tuple[float, float] | None:
        if not await self._ensure(tenant_id):
            return None
        balance, reserved = await self.client.hmget(self._key(tenant_id), "balance", "reserved")
        if balance is None:
            return None
        return float(balance), float(reserved or 0.0)

    async def has_account(self, tenant_id: uuid.UUID) -> bool:
        return await self._ensure(tenant_id)

    async def _ensure(self, tenant_id: uuid.UUID) -> bool:
        """Load the tenant's hash from its account when Redis has none; False when it has no account."""
        if tenant_id in self._known:
            return True
        checked = self._without_account.get(tenant_id)
        if checked is not None and time.monotonic() - checked < self.reconcile_s:
            return False
        if await self.client.exists(self._key(tenant_id)):
            self._known.add(tenant_id)
            return True
        loaded = await self._read_accounts(self.db, [tenant_id])
        if tenant_id not in loaded:
            self._without_account[tenant_id] = time.monotonic()
            return False
        balance, total, count = loaded[tenant_id]
        await self._load(keys=[self._key(tenant_id)], args=[repr(balance), repr(total), str(count)])
        self._without_account.pop(tenant_id, None)
        self._known.add(tenant_id)
        return True

    # ------------------------------------------------------------------------------- hold and settle

    async def hold(self, tenant_id: uuid.UUID, amount_usd: float) -> tuple[float, float] | None:
        """Hold ``amount_usd``: None when held, else ``(balance, reserved)``; :class:`LookupError` when the
        tenant has no account."""
        for _ in range(2):
            if not await self._ensure(tenant_id):
                raise LookupError(tenant_id)
            answer = await self._hold(keys=[self._key(tenant_id)], args=[repr(float(amount_usd))])
            if int(answer[0]) == 1:
                return None
            if int(answer[0]) == 0:
                return float(answer[1]), float(answer[2])
            self._known.discard(tenant_id)  # the hash is gone (Redis lost its data): load it again
        raise LookupError(tenant_id)

    async def settle(self, tenant_id: uuid.UUID, reservation_id: uuid.UUID, held_usd: float, actual_usd: float,
                     details: Mapping[str, Any], description: str = "") -> Settlement | None:
        answer = await self._settle(keys=[self._key(tenant_id)], args=[repr(float(held_usd)), repr(float(actual_usd))])
        if int(answer[0]) != 1:
            self._known.discard(tenant_id)
            return None
        charge, balance, overrun, collected = (float(value) for value in answer[1:5])
        settlement = Settlement(charge, balance, overrun, collected)
        if overrun > 0:
            details = {**details, "overrun_usd": overrun, "uncollected_usd": overrun - collected,
                       "held_usd": held_usd, "cost_usd": actual_usd}
        self.writer.submit("charge", charge_record(tenant_id, reservation_id, settlement, held_usd, details,
                                                   description))
        return settlement

    # ----------------------------------------------------------------------------------- reconcile

    async def refresh(self, tenant_ids: Sequence[uuid.UUID]) -> None:
        """Carry grants the database has into these tenants' hashes (after a grant)."""
        for tenant_id in tenant_ids:
            self._without_account.pop(tenant_id, None)
        await self._apply(await self._read_accounts(self.db, list(tenant_ids)))
        for tenant_id in tenant_ids:
            await self._ensure(tenant_id)

    def start(self) -> None:
        """Reconcile the tenants this process meters every ``reconcile_s``, on the running loop, until the
        writer stops."""
        if self.reconcile_s > 0:
            task = asyncio.get_running_loop().create_task(self._reconcile_every(), name="credit-reconcile")
            self.writer.on_stop(lambda: _cancel(task))

    async def _reconcile_every(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_s)
            try:
                await self._apply(await self._read_accounts(self.db, list(self._known)))
            except Exception as exc:  # Redis or the database away: the next round tries again
                logger.warning("could not reconcile the credit balances (%s: %s)", type(exc).__name__, exc)

    async def _apply(self, accounts: Mapping[uuid.UUID, tuple[float, float, int]]) -> None:
        for tenant_id, (_, total, count) in accounts.items():
            if await self._reconcile(keys=[self._key(tenant_id)], args=[repr(total), str(count)]):
                logger.info("credit balance of tenant %s took grants from the database", tenant_id,
                            extra={"event": "credits.reconciled", "tenant": str(tenant_id)})

    @staticmethod
    async def _read_accounts(db: Database, tenant_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[float, float, int]]:
        """``tenant -> (balance_usd, sum and number of non-charge transactions)`` for those with an account."""
        found: dict[uuid.UUID, tuple[float, float, int]] = {}
        async with db.session() as session:
            for start in range(0, len(tenant_ids), 500):
                chunk = tenant_ids[start:start + 500]
                balances = {tenant_id: balance for tenant_id, balance in await session.execute(
                    sa.select(CreditAccount.tenant_id, CreditAccount.balance_usd)
                    .where(CreditAccount.tenant_id.in_(chunk)))}
                external = {tenant_id: (float(total or 0.0), int(count)) for tenant_id, total, count in (
                    await session.execute(
                        sa.select(CreditTransaction.tenant_id, sa.func.sum(CreditTransaction.amount_usd),
                                  sa.func.count())
                        .where(CreditTransaction.tenant_id.in_(chunk), CreditTransaction.kind != "charge")
                        .group_by(CreditTransaction.tenant_id)))}
                for tenant_id, balance in balances.items():
                    total, count = external.get(tenant_id, (0.0, 0))
                    found[tenant_id] = (float(balance), total, count)
        return found


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
