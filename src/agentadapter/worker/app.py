"""The Celery application, and the runtime each worker process keeps for its whole life.

The API only sends tasks by name (``agentadapter.drive``, ``agentadapter.step``: the names and the
broker's configuration are the application layer's, :mod:`agentadapter.service.queue`); workers import
:mod:`agentadapter.worker.tasks`. Delivery is at least once, and the tasks make repeats harmless (see
:mod:`agentadapter.worker.engine`). No result backend: results live in the database.

Each worker process builds one :class:`WorkerRuntime` when it starts (Celery's
``worker_process_init``): one event loop that runs every task's coroutine, so the database pool,
the LLM's HTTP connections and the Redis connections survive from task to task - one owner of them
(:class:`~agentadapter.redis_connections.RedisConnections`), handed to the shared state and the run channel and
closed last - and the process's own
``Database``, ``LLM`` and ``TenantLLMs``, wired as the API server wires its own: usage records and
budgets in the database (budgets, breakers and rate limits on Redis), each tenant's stored provider
keys (decrypted with ``AGENTADAPTER_SECRET_KEY``) and its credit guard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from agentadapter.config import Settings, get_settings
from agentadapter.service import queue
from agentadapter.service.queue import DRIVE_TASK, STEP_TASK, broker_url, client_app
from agentadapter.service.worker_settings import WorkerSettings

if TYPE_CHECKING:
    from agentadapter.agents.tools.registry import ToolRegistry
    from agentadapter.llm.client import LLM
    from agentadapter.llm.shared import SharedState
    from agentadapter.redis_connections import RedisConnections
    from agentadapter.service.channel import RunChannel
    from agentadapter.service.config import ServiceSettings
    from agentadapter.service.tenancy import TenantLLMs
    from agentadapter.store.database import Database

__all__ = ["DRIVE_TASK", "STEP_TASK", "WorkerRuntime", "broker_url", "celery_app", "client_app", "configure",
           "runtime"]

logger = logging.getLogger("agentadapter.worker")

T = TypeVar("T")

celery_app = Celery("agentadapter")
"""Configured from the settings by :func:`configure` (the API's executor, ``agentadapter worker``)."""


def configure(settings: Settings | None = None, worker: WorkerSettings | None = None,
              app: Celery | None = None) -> Celery:
    """Point a Celery app (default: the workers' :data:`celery_app`) at the configured broker; returns it."""
    return queue.configure(app if app is not None else celery_app, settings or get_settings(), worker)


class WorkerRuntime:
    """One worker process's loop, database, LLM facades, tools and Redis channel."""

    def __init__(self, settings: Settings | None = None, worker: WorkerSettings | None = None) -> None:
        self.settings = settings or get_settings()
        self.worker = worker or WorkerSettings()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.db: Database
        self.llm: LLM
        self.tenant_llms: TenantLLMs
        self.tools: ToolRegistry
        self.channel: RunChannel
        self.shared: SharedState | None
        self.redis: RedisConnections
        self.service: ServiceSettings
        self.loop.run_until_complete(self._open())

    async def _open(self) -> None:
        from agentadapter.agents.tools.registry import default_registry
        from agentadapter.llm.client import LLM
        from agentadapter.llm.shared import shared_state_from_settings
        from agentadapter.redis_connections import RedisConnections
        from agentadapter.service.channel import RunChannel
        from agentadapter.service.config import ServiceSettings
        from agentadapter.service.tenancy import service_facades
        from agentadapter.store.database import Database, PoolSettings, database_url

        redis = RedisConnections.from_settings(self.settings)
        assert redis is not None  # configure() checked that Redis is set
        self.redis = redis
        service = ServiceSettings()
        self.service = service
        self.db = Database(database_url(self.settings), pool=PoolSettings())
        self.shared = shared_state_from_settings(self.settings, redis)
        self.llm = LLM(shared=self.shared)
        # As the API server does: a run's model calls are metered and guarded alike wherever it executes.
        self.tenant_llms = await service_facades(self.llm, self.db, settings=self.settings, service=service,
                                                 shared=self.shared)
        self.tools = default_registry()
        if service.approval_tools:  # the operator's tools whose calls wait for a human's approval, as in the API
            from agentadapter.service.approvals import require_approval

            require_approval(self.tools, service.approval_tools)
        self.channel = RunChannel(redis, self.worker)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a task's coroutine on the process's loop, then write the usage its calls recorded."""
        return self.loop.run_until_complete(self._run(coroutine))

    async def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            return await coroutine
        finally:
            # The ledger writes in the background, but this loop only runs while a task does:
            # without this, a step's usage would wait for the next task to be written.
            try:
                await self.llm.ledger.flush()
            except Exception as exc:  # the entries stay buffered; the next task's flush retries them
                logger.warning("could not write %d usage entries (%s: %s); the next task retries",
                               self.llm.ledger.pending, type(exc).__name__, exc)

    def close(self) -> None:
        from agentadapter.store.usage import flush_ledger

        async def close() -> None:
            await self.channel.aclose()
            await self.llm.aclose()
            if self.shared is not None:
                await self.shared.aclose()
            await self.redis.aclose()  # last: the channel and the shared state used it
            await flush_ledger(self.llm.ledger)
            await self.db.dispose()

        try:
            self.loop.run_until_complete(close())
        finally:
            self.loop.close()


_runtime: WorkerRuntime | None = None


def runtime() -> WorkerRuntime:
    """This process's runtime (built at process start; on first use where no such signal comes)."""
    global _runtime
    if _runtime is None:
        _runtime = WorkerRuntime()
    return _runtime


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _process_started(**_: Any) -> None:
    runtime()


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _process_stopping(**_: Any) -> None:
    global _runtime
    if _runtime is not None:
        try:
            _runtime.close()
        except Exception:
            logger.warning("closing the worker runtime failed", exc_info=True)
        _runtime = None
