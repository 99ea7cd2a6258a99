"""Credit balances on Redis for several processes, on SQLite and PostgreSQL, each test on a private
``redis-server``: two processes never spend one balance twice, an overrun stops at minus its hold, grants
arrive by reconciliation, a rich balance is leased so that holds and charges make no Redis call of their
own, an unused lease goes back when the tenant runs short, and charges a process committed but never
told Redis about (it died) reach the balance by the next reconciliation."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentadapter.llm.errors import InsufficientCreditsError
from agentadapter.llm.messages import Response
from agentadapter.redis_connections import RedisConnections
from agentadapter.store import credits
from agentadapter.store.database import Database
from agentadapter.store.models import CreditAccount, Tenant
from agentadapter.store.redis_balances import RedisBalances
from agentadapter.store.writer import RecordWriter
from agentadapter.testing import offline_llm
from fakes.priced import PRICE_PER_TOKEN, PRICED_MODEL, priced_backend
from services import PrivateRedis, start_redis, stop_group
from store.accounts import fund, stored

CALL = 1000 * PRICE_PER_TOKEN
"""What one call of ``max_tokens=1000`` to the priced model holds, and costs."""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = start_redis(directory)
    yield server
    stop_group(server.process)


@pytest.fixture
async def client(redis_server: PrivateRedis) -> AsyncIterator[object]:
    """The service's command client (a blocking pool: calls beyond its connections wait for one)."""
    connections = RedisConnections(redis_server.url(), socket_timeout_s=10)
    yield connections.commands
    await connections.aclose()


@pytest.fixture
async def processes(db: Database, tmp_path: Path, client: object) -> AsyncIterator[Processes]:
    """Starts processes' balances on one Redis (a key prefix of the test's own), each with its own writer;
    stops them at the end."""
    started = Processes(db, tmp_path, client, f"test-{uuid.uuid4().hex[:8]}")
    try:
        yield started
    finally:
        for writer in started.writers:
            await writer.stop()


class Processes:
    def __init__(self, db: Database, tmp_path: Path, client: object, prefix: str) -> None:
        self.db, self.tmp_path, self.client, self.prefix = db, tmp_path, client, prefix
        self.writers: list[RecordWriter] = []

    async def start(self, *, reconcile_s: float = 0.2) -> RedisBalances:
        writer = RecordWriter(self.db.url, self.tmp_path / f"ledger-{len(self.writers)}")
        balances = RedisBalances(self.db, writer, self.client, prefix=self.prefix, reconcile_s=reconcile_s)
        self.writers.append(writer)
        await writer.start()
        balances.start()
        return balances


@pytest.fixture
async def two_processes(processes: Processes) -> tuple[RedisBalances, RedisBalances]:
    """Two processes' balances on one Redis, each reconciling every 0.2 s."""
    return await processes.start(), await processes.start()


async def calls(db: Database, tenant: Tenant, processes: tuple[RedisBalances, ...],
                count: int) -> tuple[list[Response], list[BaseException]]:
    """``count`` calls of one CALL each at once, spread over the processes: those answered, those refused."""
    llms = [offline_llm(backends={"priced": priced_backend()},
                        guards=[credits.CreditGuard(db, tenant.id, required=False, balances=balances)])
            for balances in processes]
    try:
        results = await asyncio.gather(
            *(llms[n % len(llms)].generate(PRICED_MODEL, "hi", max_tokens=1000) for n in range(count)),
            return_exceptions=True)
    finally:
        for llm in llms:
            await llm.aclose()
    answered = [r for r in results if isinstance(r, Response)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, InsufficientCreditsError) for r in refused), refused
    return answered, refused


async def hash_of(client: object, balances: RedisBalances, tenant: Tenant) -> dict[str, float]:
    fields = await client.hgetall(balances.prefix + tenant.id.hex)  # type: ignore[attr-defined]
    return {name.decode(): float(value) for name, value in fields.items()}


async def evalsha_calls(client: object) -> int:
    stats = await client.info("commandstats")  # type: ignore[attr-defined]
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_two_processes_cannot_overdraw_one_balance(
        db: Database, tenant: Tenant, two_processes: tuple[RedisBalances, RedisBalances]) -> None:
    await fund(db, tenant, 10 * CALL)
    answered, refused = await calls(db, tenant, two_processes, 40)
    assert len(answered) == 10 and len(refused) == 30
    for balances in two_processes:
        await balances.flush()
    balance, charged = await stored(db, tenant)
    assert balance == pytest.approx(0.0, abs=1e-12) and len(charged) == 10
    assert await two_processes[1].available(tenant.id) == (pytest.approx(0.0, abs=1e-12), 0.0)


async def test_two_processes_with_leases_spend_a_rich_balance_once_and_all_of_it(
        db: Database, tenant: Tenant, two_processes: tuple[RedisBalances, RedisBalances], client: object) -> None:
    await fund(db, tenant, 300 * CALL)  # rich: the first holds of each process lease dozens of calls
    answered, refused = await calls(db, tenant, two_processes, 400)
    assert len(answered) <= 300 and len(answered) + len(refused) == 400
    # Calls refused while the other process had room in its lease find it once that lease is given back
    # (the tenant is short now): the whole balance is spent, and not one call more.
    spent = len(answered)
    async with asyncio.timeout(20):
        while spent < 300:
            more, _ = await calls(db, tenant, two_processes, 2)
            spent += len(more)
            if not more:
                await asyncio.sleep(0.05)
    assert spent == 300
    more, refused = await calls(db, tenant, two_processes, 2)
    assert more == [] and len(refused) == 2
    for balances in two_processes:
        await balances.flush()
    balance, charged = await stored(db, tenant)
    assert balance == pytest.approx(0.0, abs=1e-9) and len(charged) == 300
    assert sum(charged) == pytest.approx(-300 * CALL)
    state = await hash_of(client, two_processes[0], tenant)
    assert state["balance"] == pytest.approx(0.0, abs=1e-9) and state["charged"] == pytest.approx(300 * CALL)


async def test_a_rich_balance_is_leased_so_holds_and_charges_make_no_redis_call_of_their_own(
        db: Database, tenant: Tenant, client: object, tmp_path: Path) -> None:
    await fund(db, tenant, 1000 * CALL)
    # The writer commits when flushed (not every 0.1 s), so that the Redis calls counted are the holds' alone.
    writer = RecordWriter(db.url, tmp_path / "ledger", batch_interval_s=3600, segment_s=3600)
    balances = RedisBalances(db, writer, client, prefix=f"test-{uuid.uuid4().hex[:8]}", reconcile_s=3600)
    await writer.start()
    balances.start()
    try:
        guard = credits.CreditGuard(db, tenant.id, required=False, balances=balances)
        first = await guard.reserve(CALL, {})
        lease = await hash_of(client, balances, tenant)
        assert lease[f"r:{balances.instance}"] == pytest.approx(65 * CALL)  # its own hold and 64 more
        before = await evalsha_calls(client)
        await first.settle(CALL)
        for _ in range(50):
            hold = await guard.reserve(CALL, {})
            await hold.settle(CALL)
        assert await evalsha_calls(client) - before <= 1  # the second lease, if the first ran out
        await balances.flush()  # the charges committed: Redis takes them in a script or two, not 51
        assert await evalsha_calls(client) - before <= 4
        balance, charged = await stored(db, tenant)
        assert balance == pytest.approx(949 * CALL) and len(charged) == 51
        state = await hash_of(client, balances, tenant)
        assert state["balance"] == pytest.approx(949 * CALL) and state["charged"] == pytest.approx(51 * CALL)
        # The lease no longer covers what was charged; what it still holds is unused (no call is in flight) and
        # leaves with the process.
        assert 0 < state[f"r:{balances.instance}"] < 65 * CALL
        assert await balances.available(tenant.id) == (pytest.approx(949 * CALL), 0.0)
    finally:
        await writer.stop()
    assert f"r:{balances.instance}" not in await hash_of(client, balances, tenant)


async def test_an_unused_lease_is_returned_when_the_tenant_runs_short(
        db: Database, tenant: Tenant, processes: Processes, client: object) -> None:
    first = await processes.start(reconcile_s=3600)  # reconciled below, when the test says so
    second = await processes.start()
    await fund(db, tenant, 130 * CALL)
    await credits.CreditGuard(db, tenant.id, required=False, balances=first).reserve(CALL, {})
    assert (await hash_of(client, first, tenant))[f"r:{first.instance}"] == pytest.approx(33 * CALL)
    guard = credits.CreditGuard(db, tenant.id, required=False, balances=second)
    for _ in range(97):  # what the lease left free, taken hold by hold (too little to lease more)
        await guard.reserve(CALL, {})
    with pytest.raises(InsufficientCreditsError):
        await guard.reserve(CALL, {})  # 32 calls' worth sit unused in the first process's lease
    await first.reconcile()  # ... until its next reconciliation gives them back: the tenant is short
    assert (await hash_of(client, first, tenant))[f"r:{first.instance}"] == pytest.approx(CALL)
    for _ in range(32):
        await guard.reserve(CALL, {})
    with pytest.raises(InsufficientCreditsError):
        await guard.reserve(CALL, {})


async def test_charges_of_a_process_that_died_before_telling_redis_reach_the_balance(
        db: Database, tenant: Tenant, two_processes: tuple[RedisBalances, RedisBalances], client: object) -> None:
    dying, living = two_processes
    await fund(db, tenant, 500 * CALL)
    assert await living.has_account(tenant.id)  # the living process meters the tenant: it reconciles it
    assert dying._reconciling is not None
    dying._reconciling.cancel()
    dying._loop = None  # its commits can no longer be told to Redis: as if it died right after them
    guard = credits.CreditGuard(db, tenant.id, required=False, balances=dying)
    for _ in range(5):
        hold = await guard.reserve(CALL, {})
        await hold.settle(CALL)
    await dying.writer.flush()
    assert (await stored(db, tenant))[0] == pytest.approx(495 * CALL)
    assert (await hash_of(client, dying, tenant))["balance"] == pytest.approx(500 * CALL)
    await client.delete(f"{dying.prefix.rsplit(':', 2)[0]}:credits-alive:{dying.instance}")  # type: ignore[attr-defined]
    async with asyncio.timeout(10):  # the living process's reconciliation takes the database's charged total
        while (state := await hash_of(client, living, tenant))["balance"] != pytest.approx(495 * CALL):
            await asyncio.sleep(0.05)
    assert state["charged"] == pytest.approx(5 * CALL)
    # The dead process's lease stays: it would cover charges of its journal not yet in the database, and
    # nobody has replayed that journal (its writer is alive here); the grace period is ten minutes.
    await asyncio.sleep(1.0)
    assert f"r:{dying.instance}" in await hash_of(client, living, tenant)
    living.orphan_grace_s = 1.0  # ... until the grace period for a journal nobody replays is over
    async with asyncio.timeout(10):
        while f"r:{dying.instance}" in await hash_of(client, living, tenant):
            await asyncio.sleep(0.05)


KILLED = """
import asyncio, os, signal, sys, uuid
from pathlib import Path
from agentadapter.redis_connections import RedisConnections
from agentadapter.store.database import Database
from agentadapter.store.redis_balances import RedisBalances
from agentadapter.store.writer import RecordWriter

async def main():
    writer = RecordWriter(sys.argv[1], Path(sys.argv[2]))
    writer.journal.open()  # journaled, never written: the thread is not even started
    balances = RedisBalances(Database(sys.argv[1]), writer, RedisConnections(sys.argv[3]).commands,
                             prefix=sys.argv[4], reconcile_s=0.2)
    balances.start()
    tenant, amount = uuid.UUID(sys.argv[5]), float(sys.argv[6])
    for _ in range(5):
        assert await balances.hold(tenant, amount) is None
        await balances.settle(tenant, uuid.uuid4(), amount, amount, {})
    await asyncio.sleep(0.3)  # its liveness key is on Redis
    print(balances.instance, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_the_lease_of_a_killed_process_is_released_once_its_journal_is_replayed(
        db: Database, tenant: Tenant, client: object, redis_server: PrivateRedis, tmp_path: Path) -> None:
    await fund(db, tenant, 500 * CALL)
    prefix, root = f"test-{uuid.uuid4().hex[:8]}", tmp_path / "ledger"
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-c", KILLED, db.url, str(root), redis_server.url(), prefix, str(tenant.id), repr(CALL)],
        capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    instance = done.stdout.strip()
    writer = RecordWriter(db.url, root)
    living = RedisBalances(db, writer, client, prefix=prefix, reconcile_s=0.2)
    state = await hash_of(client, living, tenant)
    assert state["balance"] == pytest.approx(500 * CALL) and state[f"r:{instance}"] >= 5 * CALL
    await writer.start()  # replays the dead process's journal: its five charges reach the database
    living.start()
    try:
        assert await living.has_account(tenant.id)  # metered here: reconciled here
        async with asyncio.timeout(20):
            while f"r:{instance}" in (state := await hash_of(client, living, tenant)):
                await asyncio.sleep(0.05)
        assert state["balance"] == pytest.approx(495 * CALL)
        assert (await stored(db, tenant))[0] == pytest.approx(495 * CALL)
    finally:
        await writer.stop()


async def test_an_overrun_stops_at_minus_its_hold_and_grants_arrive_by_reconciliation(
        db: Database, tenant: Tenant, two_processes: tuple[RedisBalances, RedisBalances]) -> None:
    first, second = two_processes
    await fund(db, tenant, 1.0)
    guard = credits.CreditGuard(db, tenant.id, required=False, balances=first)
    hold = await guard.reserve(0.5, {})
    await hold.settle(3.0)
    await first.flush()
    assert await second.available(tenant.id) == (-0.5, 0.0)
    await fund(db, tenant, 2.0)  # from elsewhere: reaches the balance within the reconciliation delay
    async with asyncio.timeout(10):
        while (await second.available(tenant.id) or (0.0, 0.0))[0] != pytest.approx(1.5):
            await asyncio.sleep(0.05)
    await fund(db, tenant, 1.0)
    await first.refresh([tenant.id])  # a grant made in this process: at once
    assert await second.available(tenant.id) == (pytest.approx(2.5), 0.0)
    await first.flush()
    assert await stored(db, tenant) == (pytest.approx(2.5), [-1.5])


async def test_a_hash_the_previous_release_made_is_shared_during_a_rolling_upgrade(
        db: Database, tenant: Tenant, processes: Processes, client: object) -> None:
    """The previous release kept the same hash without leases: holds of its own (``r:<instance>``) and charges
    settled straight into ``balance``, never into the account's charged total. Both releases share it."""
    await fund(db, tenant, 100 * CALL)
    async with db.writer() as session:  # five calls the previous release charged, as its writer did
        await session.execute(sa.update(CreditAccount).where(CreditAccount.tenant_id == tenant.id)
                              .values(balance_usd=95 * CALL))
    key = f"{processes.prefix}:credits:{tenant.id.hex}"
    await client.hset(key, mapping={  # type: ignore[attr-defined]
        "balance": repr(95 * CALL), "ext_sum": repr(100 * CALL), "ext_n": "1", "r:previous": repr(CALL)})
    await client.set(f"{processes.prefix}:credits-alive:previous", b"1", ex=60)  # type: ignore[attr-defined]
    current = await processes.start()
    guard = credits.CreditGuard(db, tenant.id, required=False, balances=current)
    for _ in range(10):
        hold = await guard.reserve(CALL, {})
        await hold.settle(CALL)
    await current.flush()
    state = await hash_of(client, current, tenant)
    # The charged total this release met (0: the previous release's charges never moved it) is its baseline.
    assert state["balance"] == pytest.approx(85 * CALL) and state["charged"] == pytest.approx(10 * CALL)
    assert state["r:previous"] == pytest.approx(CALL)  # the previous release's call in flight still holds
    assert (await stored(db, tenant))[0] == pytest.approx(85 * CALL)
    assert await current.available(tenant.id) == (pytest.approx(85 * CALL), pytest.approx(CALL))

