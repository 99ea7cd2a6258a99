"""Running credit balances on Redis, for a service of several processes (``--workers N``, Celery workers).

The same rules as :class:`~agentadapter.store.balances.RunningBalances` (hold what is available, charge
an overrun only down to minus the call's own hold), kept across processes without a Redis round trip per
call: each process **leases** part of a tenant's balance and takes its calls' holds and charges from
that lease in memory.

On Redis, one hash per tenant, ``<prefix>:credits:<tenant>``: ``balance`` (grants less the charges the
database has committed), ``charged`` (the account's ``charged_usd`` those charges add up to), ``ext_sum``
/ ``ext_n`` (the sum and number of the account's grants and adjustments already in ``balance``), and
one ``r:<instance>`` per process: what that process has leased. What a new lease can take is ``balance``
less every lease.

In a process, per tenant: the lease's size, the holds of its calls in flight and the charges it settled
that the database has not committed yet; a hold is taken from the lease when it has room (no I/O) and
the lease is extended by one script call when it has not. A settlement is computed in memory with the
usual rules against the lease (an overrun larger than the lease first asks Redis for the rest of the
balance), its charge goes to the :class:`~agentadapter.store.writer.RecordWriter` (journaled before the
call answers, written in batches, moved into the account exactly once), and when the writer has
committed it the process tells Redis in one script: ``balance`` takes the account's new ``charged_usd``
(the largest total seen wins, so totals from several processes, late or repeated, are applied once) and
the lease shrinks by the charges it covered. Until then the lease keeps covering them.

How much a lease takes: what the call needs plus up to ``lease_holds`` holds of the same size, at most a
quarter of what is free, and only while what is free is at least ``2 x lease_holds`` such holds. A tenant
near the end of its balance therefore gets exactly what each call holds, as if there were no leases; a
call may still be refused while another process has an unused lease taken when the balance was larger,
until that process's next reconciliation returns it (every ``AGENTADAPTER_CREDIT_RECONCILE_S``; an idle
lease, or one whose tenant has become short, is returned then). ``lease_holds=0`` leases exactly what
each hold needs: one script call per hold.

A crash: each process keeps a liveness key (``<prefix>:credits-alive:<instance>``, refreshed at every
reconciliation, expiring after three periods). The lease of a process whose key has expired still
covers its charges that were journaled and not committed, so it is released only once its journal has
been replayed into the database (the replaying process marks it, ``<prefix>:credits-replayed:<instance>``,
after Redis has taken the replayed charges' total) or, when nobody replays it (its machine is gone),
``orphan_grace_s`` after it was first seen dead. Every reconciliation also carries the database's
``charged_usd`` and grants into ``balance``, so a charge committed by a process that died before telling
Redis is taken within a period. A tenant's hash is loaded from its account when missing (first use, or
Redis lost its data: the balance is then the database's, which lags by the charges still in the writers'
queues, at most a second or so of calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from agentadapter.redis_connections import ScriptBatch
from agentadapter.store.balances import ChargeSink, Settlement, charge_record, settle_amounts
from agentadapter.store.database import Database
from agentadapter.store.models import CreditAccount, CreditTransaction
from agentadapter.store.writer import RecordWriter

__all__ = ["RedisBalances"]

logger = logging.getLogger("agentadapter.store.redis_balances")

_STOP_WAIT_S = 5.0
"""How long stopping waits for the reconciliation round in flight and for Redis to drop the alive key."""
_EPSILON = 1e-12
_MOST_WAITS = 16
"""How many lease extensions a hold that finds no room waits for before it asks Redis itself."""
_LEASE_SHARE = 0.25
"""The most of a tenant's free balance one lease takes beyond what its call needs."""

# Leases are kept per process, in fields ``r:<instance>``: a process that dies takes its lease with it
# once its liveness key expires. What a new lease can take is the balance less all of them.
_LEASED = """
local function leased_of(fields)
  local total = 0
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'r:' then total = total + tonumber(fields[i + 1]) end
  end
  return total
end
local function fmt(value) return string.format('%.17g', value) end
"""

# KEYS[1] the tenant's hash; ARGV: instance, need, extra wanted, partial (1: grant what is free when it is less
# than the need), rich (the free balance from which an extra is granted), unit (the extra is whole holds of
# this size, so that leases of equal holds leave no fragments behind; 0: any amount).
_EXTEND = _LEASED + """
local fields = redis.call('HGETALL', KEYS[1])
local balance = nil
for i = 1, #fields, 2 do if fields[i] == 'balance' then balance = tonumber(fields[i + 1]) end end
if not balance then return {-1} end
local leased = leased_of(fields)
local free = balance - leased
local need = tonumber(ARGV[2])
local granted = 0
if free >= need - 1e-12 then
  granted = need
  if free >= tonumber(ARGV[5]) then
    local extra = math.min(tonumber(ARGV[3]), (free - need) * %(share)s)
    local unit = tonumber(ARGV[6])
    if unit > 0 then extra = math.floor(extra / unit) * unit end
    granted = need + extra
  end
elseif ARGV[4] == '1' and free > 0 then
  granted = free
else
  return {0, fmt(balance), fmt(leased)}
end
redis.call('HINCRBYFLOAT', KEYS[1], 'r:' .. ARGV[1], granted)
return {1, fmt(granted), fmt(balance)}
""".replace("%(share)s", repr(_LEASE_SHARE))

# The database committed charges: take its charged total (when larger than the one applied) and shrink this
# process's lease by the charges it covered. ARGV: instance, charged total, lease covered.
_COMMITTED = _LEASED + """
local state = redis.call('HMGET', KEYS[1], 'balance', 'charged', 'r:' .. ARGV[1])
if not state[1] then return {-1} end
local balance = tonumber(state[1])
local total = tonumber(ARGV[2])
if not state[2] then
  redis.call('HSET', KEYS[1], 'charged', fmt(total))  -- a hash made by an older release: this is its baseline
elseif total > tonumber(state[2]) + 1e-12 then
  balance = balance - (total - tonumber(state[2]))
  redis.call('HSET', KEYS[1], 'balance', fmt(balance), 'charged', fmt(total))
end
local covered = tonumber(ARGV[3])
if covered > 0 and state[3] then
  local mine = tonumber(state[3]) - covered
  if mine > 1e-12 then redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], fmt(mine))
  else redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1]) end
end
return {1, fmt(balance)}
"""

# Every reconciliation: release the leases of dead processes (once their journals are replayed, or a grace
# period after they were first seen dead: ``d:<instance>``), take the database's grants (when it has more than
# ``ext_n``) and charged total, shrink this process's lease by the charges it covered, and return its unused
# lease when asked or when the tenant is short. ARGV: alive-key prefix, instance, grants sum, grants count,
# charged total, lease covered, unused, return always (1/0), short (the free balance under which the unused
# lease is returned), what this process holds leased (its lease is lost when Redis has none of it), replayed-
# marker prefix, grace (s).
_RECONCILE = _LEASED + """
local fields = redis.call('HGETALL', KEYS[1])
local state = {}
for i = 1, #fields, 2 do state[fields[i]] = fields[i + 1] end
if not state['balance'] then return {-1} end
local now = tonumber(redis.call('TIME')[1])
local lease_fields = {}
for field, _ in pairs(state) do
  if string.sub(field, 1, 2) == 'r:' then table.insert(lease_fields, string.sub(field, 3)) end
end
for _, name in ipairs(lease_fields) do
  local since = state['d:' .. name]
  if redis.call('EXISTS', ARGV[1] .. name) == 1 then
    if since then redis.call('HDEL', KEYS[1], 'd:' .. name) end
  elseif redis.call('EXISTS', ARGV[11] .. name) == 1 or (since and now - tonumber(since) > tonumber(ARGV[12])) then
    redis.call('HDEL', KEYS[1], 'r:' .. name, 'd:' .. name)
    state['r:' .. name] = nil
  elseif not since then
    redis.call('HSET', KEYS[1], 'd:' .. name, tostring(now))
  end
end
local balance = tonumber(state['balance'])
local count = tonumber(ARGV[4])
if count > (tonumber(state['ext_n']) or 0) then
  balance = balance + tonumber(ARGV[3]) - (tonumber(state['ext_sum']) or 0)
  redis.call('HSET', KEYS[1], 'ext_sum', ARGV[3], 'ext_n', ARGV[4])
end
local total = tonumber(ARGV[5])
if not state['charged'] then
  redis.call('HSET', KEYS[1], 'charged', fmt(total))  -- a hash made by an older release: this is its baseline
elseif total > tonumber(state['charged']) + 1e-12 then
  balance = balance - (total - tonumber(state['charged']))
  redis.call('HSET', KEYS[1], 'charged', fmt(total))
end
redis.call('HSET', KEYS[1], 'balance', fmt(balance))
local leased = 0
for field, value in pairs(state) do
  if string.sub(field, 1, 2) == 'r:' then leased = leased + tonumber(value) end
end
local field = 'r:' .. ARGV[2]
if not state[field] then
  if tonumber(ARGV[10]) > 1e-9 then return {2, '0', fmt(balance), fmt(leased)} end
  return {1, '0', fmt(balance), fmt(leased)}
end
local mine = tonumber(state[field]) - tonumber(ARGV[6])
leased = leased - tonumber(ARGV[6])
local unused = tonumber(ARGV[7])
local returned = 0
if unused > 0 and (ARGV[8] == '1' or balance - leased < tonumber(ARGV[9])) then
  mine = mine - unused
  leased = leased - unused
  returned = unused
end
if mine > 1e-12 then redis.call('HSET', KEYS[1], field, fmt(mine)) else redis.call('HDEL', KEYS[1], field) end
return {1, fmt(returned), fmt(balance), fmt(leased)}
"""

_AVAILABLE = _LEASED + """
local fields = redis.call('HGETALL', KEYS[1])
local state = {}
for i = 1, #fields, 2 do state[fields[i]] = fields[i + 1] end
if not state['balance'] then return {} end
return {state['balance'], fmt(leased_of(fields))}
"""

# A hash an older release made (holds of its own, charges settled straight into ``balance``) lacks ``charged``:
# the account's total when this release first meets the hash is its baseline (the older release's charges never
# move ``charged_usd``, and this release's have not started), so both releases can share it during a rolling
# upgrade.
_LOAD = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'charged', ARGV[4])
  return 0
end
redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'ext_sum', ARGV[2], 'ext_n', ARGV[3], 'charged', ARGV[4])
return 1
"""


class _Lease:
    """This process's lease of one tenant's balance."""

    __slots__ = ("balance", "extending", "reserved", "rich", "short", "size", "unwritten", "used")

    def __init__(self) -> None:
        self.size = 0.0
        """What this process's ``r:<instance>`` field holds, less what it has not told Redis yet."""
        self.reserved = 0.0
        """The holds of this process's calls in flight."""
        self.unwritten = 0.0
        """Lease taken by charges settled here and not committed by the writer yet."""
        self.balance = 0.0
        """The tenant's balance as Redis last said (the charges not committed yet not taken off)."""
        self.used = False
        """A hold was taken since the last reconciliation (an idle lease is returned)."""
        self.extending: asyncio.Future[None] | None = None
        """Done when the extension that asked for more than its hold needs is back."""
        self.rich = True
        """The last such extension brought more than its hold (holds that find no room wait for the next)."""
        self.short = 0.0
        """What the holds waiting for extensions need beyond what the lease had (in ``reserved`` already)."""

    @property
    def free(self) -> float:
        """What a new hold can take (negative while holds wait for the lease to grow)."""
        return self.size - self.reserved - self.unwritten

    @property
    def room(self) -> float:
        """What the lease covers beyond its holds and unwritten charges: :attr:`free` without the parts of
        holds still waiting for it to grow."""
        return max(0.0, self.free + self.short)


class RedisBalances:
    """The running balances of every process of the service, on Redis (see the module docstring)."""

    def __init__(self, db: Database, writer: RecordWriter, client: Any, *, prefix: str = "agentadapter",
                 reconcile_s: float = 5.0, lease_holds: int = 64, orphan_grace_s: float = 600.0) -> None:
        self.db = db
        self.writer = writer
        self.client = client
        self.prefix = f"{prefix}:credits:"
        self.reconcile_s = reconcile_s
        self.lease_holds = max(0, lease_holds)
        """How many holds of a call's size a lease takes beyond the call's own (0: only what it needs)."""
        self._batch = ScriptBatch(client)
        self._extend = client.register_script(_EXTEND)
        self._committed = client.register_script(_COMMITTED)
        self._reconcile = client.register_script(_RECONCILE)
        self._available = client.register_script(_AVAILABLE)
        self._load = client.register_script(_LOAD)
        self.instance = writer.instance
        """This process's name in the hashes' lease fields (``r:<instance>``): its journal's, so that the process
        that replays the journal after a crash can say so (the lease is released then)."""
        self.orphan_grace_s = orphan_grace_s
        """How long the lease of a dead process whose journal nobody replays (its machine is gone) is kept."""
        self._alive_prefix = f"{prefix}:credits-alive:"
        self._replayed_prefix = f"{prefix}:credits-replayed:"
        self._replayed: list[str] = []  # journals of dead processes replayed here, not yet marked on Redis
        self._marking: asyncio.Task[None] | None = None
        self.alive_s = max(3 * reconcile_s, 1.0)
        """How long this process's leases outlive it (its liveness key is refreshed at every reconciliation)."""
        self._without_account: dict[uuid.UUID, float] = {}  # tenant -> when it was found to have none
        self._known: set[uuid.UUID] = set()
        self._leases: dict[uuid.UUID, _Lease] = {}
        self._lock = threading.Lock()  # the writer's thread reports commits while the loop holds and settles
        self._pending: dict[str, tuple[uuid.UUID, float]] = {}  # reservation (hex) -> (tenant, lease it took)
        self._to_tell: dict[uuid.UUID, list[float]] = {}  # tenant -> [charged total, lease covered]
        self._telling: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconciling: asyncio.Task[None] | None = None
        writer.register("charge", ChargeSink(self, totals=True))
        writer.on_replayed(self._journal_replayed)

    def _key(self, tenant_id: uuid.UUID) -> str:
        return self.prefix + tenant_id.hex

    def _lease(self, tenant_id: uuid.UUID) -> _Lease:
        lease = self._leases.get(tenant_id)
        if lease is None:
            lease = self._leases[tenant_id] = _Lease()
        return lease

    # --------------------------------------------------------------------------------------- reads

    async def available(self, tenant_id: uuid.UUID) -> tuple[float, float] | None:
        """``(balance, reserved)``: the balance less this process's charges not committed yet, and what is held:
        this process's calls in flight and the other processes' leases (their calls in flight and the unused
        part of their leases, which only they see)."""
        if not await self._ensure(tenant_id):
            return None
        answer = await self._available(keys=[self._key(tenant_id)])
        if not answer:
            return None
        lease = self._leases.get(tenant_id)
        with self._lock:
            unwritten, room = (lease.unwritten, lease.room) if lease is not None else (0.0, 0.0)
        reserved = max(0.0, float(answer[1]) - unwritten - room)
        return float(answer[0]) - unwritten, reserved if reserved > 1e-9 else 0.0

    async def has_account(self, tenant_id: uuid.UUID) -> bool:
        return await self._ensure(tenant_id)

    async def _ensure(self, tenant_id: uuid.UUID,
                      loaded: Mapping[uuid.UUID, tuple[float, float, float, int]] | None = None) -> bool:
        """Load the tenant's hash from its account (read now unless ``loaded`` has it) when Redis has none;
        False when it has no account."""
        if tenant_id in self._known:
            return True
        checked = self._without_account.get(tenant_id)
        if loaded is None and checked is not None and time.monotonic() - checked < self.reconcile_s:
            return False
        # Whether the tenant has an account is the database's to say: a tenant without credits is never
        # metered, so its calls (and runs) do not need Redis at all.
        if loaded is None:
            loaded = await self._read_accounts(self.db, [tenant_id])
        if tenant_id not in loaded:
            self._without_account[tenant_id] = time.monotonic()
            return False
        balance, charged, total, count = loaded[tenant_id]
        await self._load(keys=[self._key(tenant_id)], args=[repr(balance), repr(total), str(count), repr(charged)])
        self._without_account.pop(tenant_id, None)
        self._known.add(tenant_id)
        return True

    def _forget(self, tenant_id: uuid.UUID) -> None:
        """The tenant's hash is gone (Redis lost its data, or the account was deleted): so is the lease."""
        self._known.discard(tenant_id)
        lease = self._leases.get(tenant_id)
        if lease is not None:
            with self._lock:
                lease.size = 0.0

    # ------------------------------------------------------------------------------- hold and settle

    async def hold(self, tenant_id: uuid.UUID, amount_usd: float) -> tuple[float, float] | None:
        """Hold ``amount_usd``: None when held, else ``(balance, reserved)``; :class:`LookupError` when the
        tenant has no account."""
        amount = float(amount_usd)
        lease = self._leases.get(tenant_id)
        if lease is None or tenant_id not in self._known:
            if not await self._ensure(tenant_id):
                raise LookupError(tenant_id)
            lease = self._lease(tenant_id)
        lead: asyncio.Future[None] | None = None
        for turn in range(_MOST_WAITS + 1):
            with self._lock:
                lease.used = True
                free = lease.free
                if free >= amount - _EPSILON:
                    lease.reserved += amount
                    return None
                # A lease extension that may bring room for many holds is on its way: wait for it (a burst of
                # holds makes one Redis call, not one each), unless the balance has stopped being leased.
                extending = lease.extending if lease.rich and turn < _MOST_WAITS else None
                if extending is None:
                    # Claimed before the lease has room: a concurrent hold sees it taken and extends the lease
                    # for itself, so a hold waits for at most one call of its own.
                    lease.reserved += amount
                    need = amount - max(free, 0.0)
                    lease.short += need
                    extra = 0.0
                    if lease.extending is None:
                        lead = lease.extending = asyncio.get_running_loop().create_future()
                        extra = self.lease_holds * amount
                    break
            await asyncio.shield(extending)
        refused: tuple[float, float] | None = None
        try:
            refused = await self._grow(tenant_id, lease, need, extra=extra, rich=2 * self.lease_holds * amount,
                                       unit=amount)
        finally:
            with self._lock:
                lease.short -= need
                if refused is not None and lease.free + lease.short >= -_EPSILON:
                    refused = None  # refused by Redis, but another extension has made room for it meanwhile
                if refused is not None or sys.exc_info()[0] is not None:
                    reserved = lease.reserved - amount
                    lease.reserved = reserved if reserved > _EPSILON else 0.0
                if lead is not None:
                    lease.extending = None
            if lead is not None:
                lead.set_result(None)
        return refused

    async def _grow(self, tenant_id: uuid.UUID, lease: _Lease, need: float, *, extra: float, rich: float,
                    unit: float = 0.0, partial: bool = False) -> tuple[float, float] | None:
        """Extend the lease by ``need`` (and up to ``extra``): None when extended, else ``(balance, reserved)``
        as Redis had them; raises :class:`LookupError` when the tenant's hash is gone for good."""
        for _ in range(2):
            answer = await self._batch.call(
                self._extend, [self._key(tenant_id)],
                [self.instance, repr(need), repr(float(extra)), "1" if partial else "0", repr(float(rich)),
                 repr(float(unit))])
            if int(answer[0]) == 1:
                granted = float(answer[1])
                with self._lock:
                    lease.size += granted
                    lease.balance = float(answer[2])
                    if extra > 0:
                        lease.rich = granted > need + _EPSILON
                return None
            if int(answer[0]) == 0:
                with self._lock:
                    unwritten = lease.unwritten
                return float(answer[1]) - unwritten, max(0.0, float(answer[2]) - unwritten)
            self._forget(tenant_id)  # the hash is gone (Redis lost its data): load it again
            if not await self._ensure(tenant_id):
                raise LookupError(tenant_id)
            with self._lock:
                need = max(need, -lease.free)
        raise LookupError(tenant_id)

    async def settle(self, tenant_id: uuid.UUID, reservation_id: uuid.UUID, held_usd: float, actual_usd: float,
                     details: Mapping[str, Any], description: str = "") -> Settlement | None:
        """Charge ``actual_usd`` against the hold, from the lease, and journal the charge; None when the
        tenant's account is gone."""
        lease = self._lease(tenant_id)
        with self._lock:
            shortfall = max(0.0, actual_usd - held_usd) - (lease.room + held_usd)
        if shortfall > _EPSILON:
            # An overrun beyond the lease: it is collected from the rest of the balance as far as that goes.
            try:
                await self._grow(tenant_id, lease, shortfall, extra=0.0, rich=float("inf"), partial=True)
            except LookupError:
                return None
            except Exception as exc:  # Redis away: the overrun is collected from the lease alone
                logger.warning("could not extend the credit lease of tenant %s for an overrun (%s: %s)",
                               tenant_id, type(exc).__name__, exc)
        with self._lock:
            if reservation_id.hex in self._pending:
                # Settled already and not yet written; once written, the database skips a second charge.
                return Settlement(0.0, lease.balance - lease.unwritten, 0.0, 0.0)
            room = lease.room
            # The lease as a balance: what it covers is its holds and its room (this hold among the holds).
            charge, overrun, collected = settle_amounts(lease.reserved + room, lease.reserved, held_usd, actual_usd)
            # What an overrun takes beyond the lease (down to minus this call's hold) is in the balance, not in
            # the lease: the lease only covers what it holds.
            covered = min(charge, held_usd + room)
            reserved = lease.reserved - held_usd
            lease.reserved = reserved if reserved > _EPSILON else 0.0
            lease.unwritten += covered
            settlement = Settlement(charge, lease.balance - lease.unwritten - (charge - covered), overrun, collected)
            record = charge_record(tenant_id, reservation_id, settlement, held_usd, actual_usd, details, description)
            self._pending[record["r"]] = (tenant_id, covered)
            self.writer.submit("charge", record)
        return settlement

    # ------------------------------------------------------------------------ commits reach Redis

    def committed(self, records: Sequence[Mapping[str, Any]], charged_totals: Mapping[uuid.UUID, float]) -> None:
        """The writer committed these charges (its thread): the leases stop covering them and Redis takes the
        accounts' new charged totals, in one script per tenant on the loop."""
        with self._lock:
            for record in records:
                pending = self._pending.pop(str(record["r"]), None)
                if pending is None:
                    continue  # replayed from a journal of another process, or already counted
                tenant_id, covered = pending
                lease = self._leases.get(tenant_id)
                if lease is not None:
                    lease.unwritten -= covered
                    lease.size -= covered
                self._to_tell.setdefault(tenant_id, [0.0, 0.0])[1] += covered
            for tenant_id, total in charged_totals.items():
                told = self._to_tell.setdefault(tenant_id, [0.0, 0.0])
                told[0] = max(told[0], total)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed (shutdown): the next start reconciles
                loop.call_soon_threadsafe(self._tell_soon)

    def _tell_soon(self) -> None:
        if self._telling is None or self._telling.done():
            self._telling = asyncio.get_running_loop().create_task(self._tell(), name="credit-commits")

    async def _tell(self) -> None:
        while True:
            with self._lock:
                batch, self._to_tell = self._to_tell, {}
            if not batch:
                return
            results = await asyncio.gather(*(
                self._batch.call(self._committed, [self._key(tenant_id)],
                                 [self.instance, repr(total), repr(covered)])
                for tenant_id, (total, covered) in batch.items()), return_exceptions=True)
            failed = False
            for (tenant_id, (total, covered)), result in zip(batch.items(), results, strict=True):
                if isinstance(result, BaseException):
                    failed = True
                    with self._lock:  # told again with the next commits, or by the next reconciliation
                        told = self._to_tell.setdefault(tenant_id, [0.0, 0.0])
                        told[0], told[1] = max(told[0], total), told[1] + covered
                    continue
                if int(result[0]) == 1:
                    lease = self._leases.get(tenant_id)
                    if lease is not None:
                        lease.balance = float(result[1])
                else:
                    self._forget(tenant_id)
            if failed:
                logger.warning("could not tell Redis about committed credit charges; told again at the next "
                               "reconciliation", extra={"event": "credits.tell_failed"})
                return

    def _journal_replayed(self, instance: str) -> None:
        """The writer replayed the journal of a dead process (its thread): once Redis has the charged totals
        of those charges, mark it, so that the dead process's leases are released."""
        with self._lock:
            self._replayed.append(instance)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._mark_soon)

    def _mark_soon(self) -> None:
        if self._marking is None or self._marking.done():
            self._marking = asyncio.get_running_loop().create_task(self._mark_replayed(), name="credit-replayed")

    async def _mark_replayed(self) -> None:
        while True:
            try:
                await self.caught_up()
                with self._lock:
                    told, names = not self._to_tell, list(self._replayed)
                if told:
                    for name in names:
                        await self.client.set(self._replayed_prefix + name, b"1", ex=86_400)
                    with self._lock:
                        self._replayed = [name for name in self._replayed if name not in names]
                    return
            except Exception as exc:  # Redis away: the leases stay until it is back (or the grace period ends)
                logger.warning("could not mark replayed journals on Redis (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.reconcile_s)

    async def caught_up(self) -> None:
        """Wait until the commits the writer has reported so far are told to Redis (or failed to be)."""
        await asyncio.sleep(0)
        while self._telling is not None and not self._telling.done():
            await asyncio.shield(self._telling)
            await asyncio.sleep(0)

    # ----------------------------------------------------------------------------------- reconcile

    async def refresh(self, tenant_ids: Sequence[uuid.UUID]) -> None:
        """Carry grants the database has into these tenants' hashes (after a grant)."""
        accounts = await self._read_accounts(self.db, list(tenant_ids))
        await self._apply(accounts, give_back=False)
        for tenant_id in tenant_ids:
            await self._ensure(tenant_id, accounts)

    async def flush(self) -> None:
        """Wait until every charge settled before this call is committed and Redis has taken it."""
        await self.writer.flush()
        await self.caught_up()  # the writer's report of its last commit is on the loop now

    def start(self) -> None:
        """Keep this process alive in Redis and reconcile the tenants it meters every ``reconcile_s``, on the
        running loop, until the writer stops."""
        self._loop = asyncio.get_running_loop()
        task = self._reconciling = self._loop.create_task(self._reconcile_every(), name="credit-reconcile")
        self.writer.on_stop(lambda: self._stop(task))
        # Journals replayed before now (the writer replays them as it starts): their charges and marks.
        self._tell_soon()
        if self._replayed:
            self._mark_soon()

    async def _stop(self, task: asyncio.Task[None]) -> None:
        # Bounded: a shutdown never waits on a Redis that does not answer (the alive key expires by itself).
        # The charges settled so far are committed first (the writer drains only after its closers), so that
        # the leases can be given back whole.
        task.cancel()
        if self._marking is not None:
            self._marking.cancel()  # unmarked journals: their leases go after the grace period
        await asyncio.wait({task}, timeout=_STOP_WAIT_S)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_WAIT_S):
                await self.flush()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_WAIT_S):
                await self._apply(await self._read_accounts(self.db, list(self._known)), give_back=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_WAIT_S):
                await self.client.delete(self._alive_prefix + self.instance)

    async def reconcile(self) -> None:
        """One reconciliation round now (they run every ``reconcile_s``): keep this process alive in Redis,
        take the database's grants and charged totals into the hashes of the tenants it meters, release
        the leases of dead processes, and give back the unused leases of idle tenants and short ones."""
        await self.client.set(self._alive_prefix + self.instance, b"1", px=int(self.alive_s * 1000))
        await self._apply(await self._read_accounts(self.db, list(self._known)), give_back=None)

    async def _reconcile_every(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception as exc:  # Redis or the database away: the next round tries again
                logger.warning("could not reconcile the credit balances (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.reconcile_s)

    async def _apply(self, accounts: Mapping[uuid.UUID, tuple[float, float, float, int]], *,
                     give_back: bool | None) -> None:
        """One reconciliation of these tenants' hashes; ``give_back`` returns the unused leases: True all of
        them, None the idle ones and those of tenants that have become short, False none."""
        for tenant_id, (_, charged, total, count) in accounts.items():
            lease = self._leases.get(tenant_id)
            with self._lock:
                claimed = lease.size if lease is not None else 0.0  # what r:<instance> holds, less untold commits
                unused = 0.0
                always = give_back is True
                if lease is not None and give_back is not False and lease.free > _EPSILON:
                    # Taken out of the lease before asking, so no hold can use what is being returned.
                    unused = lease.free
                    lease.size -= unused
                    always = always or not lease.used
                    lease.used = False
                told = self._to_tell.pop(tenant_id, None)
            covered = told[1] if told is not None else 0.0
            charged_total = max(charged, told[0]) if told is not None else charged
            try:
                # Returned when the tenant is short: less free balance than twice the unused part of the lease.
                answer = await self._reconcile(keys=[self._key(tenant_id)], args=[
                    self._alive_prefix, self.instance, repr(total), str(count), repr(charged_total), repr(covered),
                    repr(unused), "1" if always else "0", repr(2 * unused), repr(claimed + covered),
                    self._replayed_prefix, repr(float(self.orphan_grace_s))])
            except BaseException:
                with self._lock:
                    if lease is not None:
                        lease.size += unused
                    if told is not None:
                        again = self._to_tell.setdefault(tenant_id, [0.0, 0.0])
                        again[0], again[1] = max(again[0], told[0]), again[1] + covered
                raise
            if int(answer[0]) == -1:
                self._forget(tenant_id)
                continue
            returned = float(answer[1])
            with self._lock:
                if lease is not None:
                    if int(answer[0]) == 2:
                        # Redis released this lease (the process looked dead: it stalled longer than
                        # alive_s): start again from nothing; the next hold leases what is in flight again.
                        logger.warning("the credit lease of tenant %s was released while this process held it; "
                                       "leasing again", tenant_id, extra={"event": "credits.lease_lost"})
                        lease.size = 0.0
                    else:
                        lease.size += unused - returned
                    lease.balance = float(answer[2])
            if returned > _EPSILON and unused > _EPSILON:
                logger.debug("returned $%.6f of unused credit lease of tenant %s", unused, tenant_id)

    @staticmethod
    async def _read_accounts(db: Database,
                             tenant_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[float, float, float, int]]:
        """``tenant -> (balance_usd, charged_usd, sum and number of non-charge transactions)`` for those with an
        account."""
        found: dict[uuid.UUID, tuple[float, float, float, int]] = {}
        async with db.session() as session:
            for start in range(0, len(tenant_ids), 500):
                chunk = tenant_ids[start:start + 500]
                accounts = {tenant_id: (float(balance), float(charged)) for tenant_id, balance, charged in
                            await session.execute(
                                sa.select(CreditAccount.tenant_id, CreditAccount.balance_usd,
                                          CreditAccount.charged_usd).where(CreditAccount.tenant_id.in_(chunk)))}
                external = {tenant_id: (float(total or 0.0), int(count)) for tenant_id, total, count in (
                    await session.execute(
                        sa.select(CreditTransaction.tenant_id, sa.func.sum(CreditTransaction.amount_usd),
                                  sa.func.count())
                        .where(CreditTransaction.tenant_id.in_(chunk), CreditTransaction.kind != "charge")
                        .group_by(CreditTransaction.tenant_id)))}
                for tenant_id, (balance, charged) in accounts.items():
                    total, count = external.get(tenant_id, (0.0, 0))
                    found[tenant_id] = (balance, charged, total, count)
        return found
