"""Running credit balances on Redis, for a service of several processes (``--workers N``, Celery workers).

The same rules as :class:`~agentadapter.store.balances.RunningBalances` (hold what is available, charge
an overrun only down to minus the call's own hold), made atomic across processes by Lua scripts on one
hash per tenant, ``<prefix>:credits:<tenant>``: ``balance``, the open holds of each process
(``r:<instance>``; ``reserved`` is their sum), and ``ext_sum`` / ``ext_n``, the sum and number of the
account's non-charge transactions (grants, adjustments) already in ``balance``. Each process keeps a
liveness key (``<prefix>:credits-alive:<instance>``, refreshed at every reconciliation, expiring after
three periods); the holds of a process whose key has expired - it was killed - are released. A hold
is one script call; a settlement is one more (the holds and settlements of concurrent calls go to Redis
together, one pipeline per turn of the event loop: :class:`~agentadapter.redis_connections.ScriptBatch`),
and its charge goes
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

from agentadapter.redis_connections import ScriptBatch
from agentadapter.store.balances import ChargeSink, Settlement, charge_record
from agentadapter.store.database import Database
from agentadapter.store.models import CreditAccount, CreditTransaction
from agentadapter.store.writer import RecordWriter

__all__ = ["RedisBalances"]

logger = logging.getLogger("agentadapter.store.redis_balances")

_STOP_WAIT_S = 5.0
"""How long stopping waits for the reconciliation round in flight and for Redis to drop the alive key."""

# Open holds are kept per process, in fields ``r:<instance>``: a process that dies takes its holds with
# it once its liveness key expires (``_SWEEP``). ``reserved`` is their sum.
_RESERVED = """
local function reserved_of(fields)
  local total = 0
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'r:' then total = total + tonumber(fields[i + 1]) end
  end
  return total
end
"""

_HOLD = _RESERVED + """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {-1} end
local state = {}
for i = 1, #fields, 2 do state[fields[i]] = fields[i + 1] end
if not state['balance'] then return {-1} end
local balance = tonumber(state['balance'])
local reserved = reserved_of(fields)
local amount = tonumber(ARGV[1])
if balance - reserved >= amount then
  redis.call('HINCRBYFLOAT', KEYS[1], 'r:' .. ARGV[2], amount)
  return {1}
end
return {0, state['balance'], string.format('%.17g', reserved)}
"""

_SETTLE = _RESERVED + """
local fields = redis.call('HGETALL', KEYS[1])
local state = {}
for i = 1, #fields, 2 do state[fields[i]] = fields[i + 1] end
if not state['balance'] then return {-1} end
local balance = tonumber(state['balance'])
local reserved = reserved_of(fields)
local held = tonumber(ARGV[1])
local actual = tonumber(ARGV[2])
local overrun = math.max(0, actual - held)
local collected = math.min(overrun, math.max(0, balance - reserved + held))
local charge = actual - overrun + collected
balance = balance - charge
local mine = (tonumber(state['r:' .. ARGV[3]]) or 0) - held
redis.call('HSET', KEYS[1], 'balance', string.format('%.17g', balance))
if mine > 1e-12 then
  redis.call('HSET', KEYS[1], 'r:' .. ARGV[3], string.format('%.17g', mine))
else
  redis.call('HDEL', KEYS[1], 'r:' .. ARGV[3])
end
return {1, string.format('%.17g', charge), string.format('%.17g', balance), string.format('%.17g', overrun),
        string.format('%.17g', collected)}
"""

_AVAILABLE = _RESERVED + """
local fields = redis.call('HGETALL', KEYS[1])
local state = {}
for i = 1, #fields, 2 do state[fields[i]] = fields[i + 1] end
if not state['balance'] then return {} end
return {state['balance'], string.format('%.17g', reserved_of(fields))}
"""

_SWEEP = """
local fields = redis.call('HKEYS', KEYS[1])
local dropped = 0
for _, field in ipairs(fields) do
  if string.sub(field, 1, 2) == 'r:' and redis.call('EXISTS', ARGV[1] .. string.sub(field, 3)) == 0 then
    redis.call('HDEL', KEYS[1], field)
    dropped = dropped + 1
  end
end
return dropped
"""

_LOAD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'ext_sum', ARGV[2], 'ext_n', ARGV[3])
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
        self._batch = ScriptBatch(client)
        self._hold = client.register_script(_HOLD)
        self._settle = client.register_script(_SETTLE)
        self._available = client.register_script(_AVAILABLE)
        self._load = client.register_script(_LOAD)
        self._reconcile = client.register_script(_RECONCILE)
        self._sweep = client.register_script(_SWEEP)
        self.instance = uuid.uuid4().hex[:16]
        """This process's name in the hashes' hold fields (``r:<instance>``)."""
        self._alive_prefix = f"{prefix}:credits-alive:"
        self.alive_s = max(3 * reconcile_s, 1.0)
        """How long this process's holds outlive it (its liveness key is refreshed at every reconciliation)."""
        self._without_account: dict[uuid.UUID, float] = {}  # tenant -> when it was found to have none
        self._known: set[uuid.UUID] = set()
        writer.register("charge", ChargeSink())

    def _key(self, tenant_id: uuid.UUID) -> str:
        return self.prefix + tenant_id.hex

    # --------------------------------------------------------------------------------------- reads

    async def available(self, tenant_id: uuid.UUID) -> tuple[float, float] | None:
        if not await self._ensure(tenant_id):
            return None
        answer = await self._available(keys=[self._key(tenant_id)])
        if not answer:
            return None
        return float(answer[0]), float(answer[1])

    async def has_account(self, tenant_id: uuid.UUID) -> bool:
        return await self._ensure(tenant_id)

    async def _ensure(self, tenant_id: uuid.UUID) -> bool:
        """Load the tenant's hash from its account when Redis has none; False when it has no account."""
        if tenant_id in self._known:
            return True
        checked = self._without_account.get(tenant_id)
        if checked is not None and time.monotonic() - checked < self.reconcile_s:
            return False
        # Whether the tenant has an account is the database's to say: a tenant without credits is never
        # metered, so its calls (and runs) do not need Redis at all.
        loaded = await self._read_accounts(self.db, [tenant_id])
        if tenant_id not in loaded:
            self._without_account[tenant_id] = time.monotonic()
            return False
        if await self.client.exists(self._key(tenant_id)):
            self._known.add(tenant_id)
            return True
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
            answer = await self._batch.call(self._hold, [self._key(tenant_id)],
                                            [repr(float(amount_usd)), self.instance])
            if int(answer[0]) == 1:
                return None
            if int(answer[0]) == 0:
                return float(answer[1]), float(answer[2])
            self._known.discard(tenant_id)  # the hash is gone (Redis lost its data): load it again
        raise LookupError(tenant_id)

    async def settle(self, tenant_id: uuid.UUID, reservation_id: uuid.UUID, held_usd: float, actual_usd: float,
                     details: Mapping[str, Any], description: str = "") -> Settlement | None:
        answer = await self._batch.call(self._settle, [self._key(tenant_id)],
                                        [repr(float(held_usd)), repr(float(actual_usd)), self.instance])
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
        """Keep this process alive in Redis and reconcile the tenants it meters every ``reconcile_s``, on the
        running loop, until the writer stops."""
        task = asyncio.get_running_loop().create_task(self._reconcile_every(), name="credit-reconcile")
        self.writer.on_stop(lambda: self._stop(task))

    async def _stop(self, task: asyncio.Task[None]) -> None:
        # Bounded: a shutdown never waits on a Redis that does not answer (the alive key expires by itself).
        task.cancel()
        await asyncio.wait({task}, timeout=_STOP_WAIT_S)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_WAIT_S):
                await self.client.delete(self._alive_prefix + self.instance)

    async def _reconcile_every(self) -> None:
        while True:
            try:
                await self.client.set(self._alive_prefix + self.instance, b"1", px=int(self.alive_s * 1000))
                known = list(self._known)
                for tenant_id in known:  # the holds of processes that died are released
                    await self._sweep(keys=[self._key(tenant_id)], args=[self._alive_prefix])
                await self._apply(await self._read_accounts(self.db, known))
            except Exception as exc:  # Redis or the database away: the next round tries again
                logger.warning("could not reconcile the credit balances (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.reconcile_s)

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
