"""Where runs execute: the :class:`RunExecutor` interface and its in-process :class:`InlineExecutor`.

The API creates a run (``queued``) and hands a :class:`RunJob` to the executor, which starts it in
the background and answers at once. ``AGENTADAPTER_EXECUTOR=inline`` (the default) runs each job as
an asyncio task of the server process, through an ``Orchestrator`` whose recorder is the store's
``StoreRunRecorder`` for the run's tenant, so runs, agent runs, messages and events land in the
database as they happen. The executor keeps each run's event log in memory while it runs and for
the last ``AGENTADAPTER_RECENT_RUNS`` finished runs, so SSE subscribers get live events, tokens
included, and replays from ``Last-Event-ID`` without a database read; older runs replay from the
database. With ``AGENTADAPTER_REDIS_URL`` set (several server processes), a cancel asked of a
process that does not run the run is published on a Redis channel, and the process that runs it
cancels it (:class:`CancelRelay`, on the process's Redis owner: its ``commands`` pool publishes, its
``blocking`` pool holds the subscription); a run's own execution needs Redis only for its protocol
when that is on Redis (``protocol_factory``, which the server points at the same owner). Each run is created
with a lease held by this process and renewed while it runs, and each process reaps the runs whose
lease expired (:mod:`agentadapter.server.run_leases`), so a run whose process was killed ends
``failed`` (``ServerLost``) in every configuration. The Celery executor
(:mod:`agentadapter.service.celery_executor`) implements the same interface. An executor that cannot
take a run raises :class:`ExecutorUnavailable`, which the API answers with a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentadapter.orchestrator import Orchestrator, RunEvent, RunHandle, RunOptions
from agentadapter.redis_connections import RedisConnections, connections_of, next_pubsub_message, stop_task
from agentadapter.server.run_leases import LeasedRunRecorder, RunLeases
from agentadapter.service.executor import CancelOutcome, ExecutorUnavailable, RunExecutor, RunJob

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM
    from agentadapter.protocol import CommunicationProtocol
    from agentadapter.service.tenancy import TenantLLMs
    from agentadapter.store.database import Database

__all__ = ["CancelOutcome", "CancelRelay", "ExecutorUnavailable", "InlineExecutor", "RunExecutor", "RunJob"]
# The interface lives in the application layer; its names stay importable from here.

logger = logging.getLogger("agentadapter.server")


class InlineExecutor(RunExecutor):
    """Runs execute as asyncio tasks of this process."""

    name = "inline"

    def __init__(
        self, db: Database, llm: LLM, *, keep_finished: int = 256, relay: CancelRelay | None = None,
        tenant_llms: TenantLLMs | None = None, leases: RunLeases | None = None,
        protocol_factory: Callable[[str], CommunicationProtocol] | None = None,
    ) -> None:
        self.db = db
        self.llm = llm
        self.protocol_factory = protocol_factory
        """Makes each run's protocol (None: the orchestrator's default, ``create_protocol``)."""
        self.tenant_llms = tenant_llms
        self.keep_finished = keep_finished
        self.relay = relay
        self.leases = leases or RunLeases(db, lease_s=30.0, reaper_interval_s=5.0)
        self._running: dict[uuid.UUID, RunHandle] = {}
        self._finished: OrderedDict[uuid.UUID, RunHandle] = OrderedDict()
        self._first_seq: dict[uuid.UUID, int] = {}
        """Resumed runs: the seq their in-memory log starts after (earlier events are in the database)."""
        self._watchers: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._stopping = asyncio.Event()
        """Set once shutdown's grace has passed: final writes stop retrying (the lease reaper ends those runs)."""
        self._handing_over = asyncio.Event()
        """Set at shutdown for the runs still going after the grace: their recorders leave the end to the hand-over."""

    def new_run_lease(self) -> dict[str, Any]:
        return self.leases.values()

    async def submit(self, job: RunJob) -> None:
        if self._closing:
            raise ExecutorUnavailable("the server is shutting down; it takes no new runs", code="shutting_down")
        # The run's calls go through its tenant's facade: the tenant's keys, credits and tag.
        llm = await self.tenant_llms.get(job.tenant_id) if self.tenant_llms is not None else self.llm
        # Its usage records name the run and project (the agent loop adds the agent that made each call).
        llm = llm.derive(tags={"run": str(job.run_id), "project": str(job.project_id), "source": "run"})
        recorder = LeasedRunRecorder(self.db, job.tenant_id, stopping=self._stopping,
                                     handing_over=self._handing_over)
        orchestrator = Orchestrator(llm=llm, recorder=recorder, protocol_factory=self.protocol_factory)
        options = replace(job.options or RunOptions(), run_id=str(job.run_id))
        handle = orchestrator.start(job.task, job.agents, job.strategy, str(job.project_id), options=options,
                                    workflow=job.workflow)
        self._running[job.run_id] = handle
        if options.resume is not None:
            self._first_seq[job.run_id] = options.resume.last_seq
        watcher = asyncio.get_running_loop().create_task(self._watch(job.run_id, handle), name=f"watch:{job.run_id}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, run_id: uuid.UUID, handle: RunHandle) -> None:
        try:
            await handle.wait()
        except Exception:  # the engine records its own failures; this is a bug if it happens
            logger.exception("run %s ended with an unexpected error", run_id)
        finally:
            self._running.pop(run_id, None)
            if handle.status == "paused":
                # Nothing more happens here: its events are read from the database until it is resumed.
                self._finished.pop(run_id, None)
                self._first_seq.pop(run_id, None)
            elif self.keep_finished:
                self._finished[run_id] = handle
                while len(self._finished) > self.keep_finished:
                    self._first_seq.pop(self._finished.popitem(last=False)[0], None)

    def cancel(self, run_id: uuid.UUID, reason: str) -> bool:
        handle = self._running.get(run_id)
        return handle.cancel(reason) if handle is not None else False

    async def request_cancel(self, run_id: uuid.UUID, reason: str) -> CancelOutcome:
        if self.cancel(run_id, reason):
            return "cancelled"
        if self.relay is not None:
            await self.relay.publish(run_id, reason)
            return "requested"
        return "unknown"

    async def start(self) -> None:
        if self.relay is not None:
            await self.relay.start(self.cancel)
        self.leases.start(self._running.keys, self._lost)

    def _lost(self, run_id: uuid.UUID) -> None:
        """The run was ended elsewhere (a reaper found its lease expired, or it was cancelled as lost): stop it."""
        logger.warning("run %s was ended by another server process while it ran here; stopping it", run_id)
        self.cancel(run_id, "the run was ended elsewhere: its lease had expired (this server process was cut off "
                            "from the database); start it again")

    def events(self, run_id: uuid.UUID, after: int = 0) -> AsyncIterator[RunEvent] | None:
        handle = self._running.get(run_id) or self._finished.get(run_id)
        if handle is None or after < self._first_seq.get(run_id, 0):
            return None  # the events before a resume are only in the database
        return handle.events(after)

    def is_running(self, run_id: uuid.UUID) -> bool:
        return run_id in self._running

    @property
    def active(self) -> int:
        return len(self._running)

    async def wait(self, run_id: uuid.UUID) -> None:
        """Wait for a run of this executor to end (tests, and shutdown)."""
        handle = self._running.get(run_id) or self._finished.get(run_id)
        if handle is not None:
            await handle.wait()
        await asyncio.sleep(0)  # let the watcher move it to the finished runs

    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Take no new runs, give the running ones ``grace_s`` to end, then hand the rest over (see
        :meth:`RunLeases.hand_over`): they end ``failed`` (``ServerShutdown``), never left running."""
        self._closing = True
        if self.relay is not None:
            await self.relay.close()
        if self._running and grace_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await asyncio.gather(*(h.wait() for h in list(self._running.values())), return_exceptions=True)
        left = dict(self._running)
        if left:
            self._handing_over.set()  # their recorders must not write "cancelled": the hand-over writes the end
            for handle in left.values():
                handle.cancel("the server shut down while the run was in progress")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.gather(*(h.wait() for h in left.values()), return_exceptions=True)
            await self.leases.hand_over(list(left))
        self._stopping.set()  # a final write still retrying gives up: the run's lease expires, a reaper ends it
        if self._watchers:
            await asyncio.gather(*list(self._watchers), return_exceptions=True)
        await self.leases.stop()


class CancelRelay:
    """Cancel requests between server processes, over a Redis pub/sub channel.

    ``redis`` is the process's Redis owner (the caller keeps it) or a URL (connections of its own,
    closed by :meth:`close`).
    """

    CHANNEL = "agentadapter:runs:cancel"

    def __init__(self, redis: RedisConnections | str) -> None:
        self._connections, self._owns_connections = connections_of(redis)
        self._redis: Any = self._connections.commands
        self._listener: asyncio.Task[None] | None = None

    async def start(self, cancel: Any) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen(cancel), name="cancel-relay")

    async def _listen(self, cancel: Any) -> None:
        """Subscribe and cancel what is asked; reconnect (with back-off) while Redis is away."""
        delay = 0.5
        while True:
            # The subscription holds its connection for as long as it listens: one of the blocking pool.
            pubsub: Any = self._connections.blocking.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.CHANNEL)
                delay = 0.5
                while True:
                    message = await next_pubsub_message(pubsub, 5.0)  # raises when cancelled (redis-py may not)
                    if message is not None:
                        self._handle(message, cancel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or gone: /readyz reports it; try again
                logger.warning("the cancel relay lost Redis (%s: %s); retrying in %.1f s", type(exc).__name__, exc,
                               delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _handle(self, message: Any, cancel: Any) -> None:
        try:
            request = json.loads(message["data"])
            cancel(uuid.UUID(request["run_id"]), str(request["reason"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed cancel request on %s: %r", self.CHANNEL, message)

    async def publish(self, run_id: uuid.UUID, reason: str) -> None:
        await self._redis.publish(self.CHANNEL, json.dumps({"run_id": str(run_id), "reason": reason}))

    async def close(self) -> None:
        await stop_task(self._listener)  # bounded: a shutdown never waits on Redis
        if self._owns_connections:
            await self._connections.aclose()
