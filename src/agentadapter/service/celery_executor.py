"""``CeleryExecutor``: runs execute on Celery workers (``AGENTADAPTER_EXECUTOR=celery``).

``submit`` sends the run's drive task to the broker (``AGENTADAPTER_BROKER_URL``, or the Redis
URL); workers (``agentadapter worker``) rebuild the run's agents from their stored definitions and
execute it step by step (:mod:`agentadapter.worker.engine`). A cancel sets the run's cancel flag
in Redis, which every drive and step checks (a running step is cancelled within a fraction of a
second), revokes the run's queued steps, and sends a drive to close the run as ``cancelled``.
Events come from the run's Redis stream, which workers append to, so any API instance serves live
SSE: first the persisted events, then the stream. The API instance also runs the reaper
(:mod:`agentadapter.service.reaper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import sqlalchemy as sa

from agentadapter.orchestrator import RunEvent
from agentadapter.service.channel import RunChannel
from agentadapter.service.executor import CancelOutcome, ExecutorUnavailable, RunExecutor, RunJob
from agentadapter.service.queue import DRIVE_TASK, STEP_TASK, client_app, step_task_id
from agentadapter.service.reaper import reap_forever
from agentadapter.service.worker_settings import WorkerSettings
from agentadapter.store import threads as thread_store
from agentadapter.store.models import TERMINAL_RUN_STATUSES, Run, RunEventRow, RunStep

if TYPE_CHECKING:
    from agentadapter.config import Settings
    from agentadapter.redis_connections import RedisConnections
    from agentadapter.store.database import Database

__all__ = ["CeleryExecutor"]

logger = logging.getLogger("agentadapter.server")


class CeleryExecutor(RunExecutor):
    """Sends runs to Celery workers; cancels and follows them through Redis."""

    name = "celery"
    SUBMIT_PING_S = 3.0
    """How long a submission waits for Redis to answer before the run is refused (503)."""

    def __init__(self, db: Database, settings: Settings, worker: WorkerSettings | None = None, *,
                 reaper: bool = True, redis: RedisConnections | None = None) -> None:
        self.db = db
        self.worker = worker or WorkerSettings()
        self.app = client_app(settings, self.worker)
        assert settings.redis_url is not None  # client_app() checked it
        # The process's Redis owner when given (the server's lifespan hands it); else the channel's own.
        self.channel = RunChannel(redis if redis is not None else settings.redis_url, self.worker)
        self.reaper = reaper
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False

    async def _send(self, name: str, args: list[str], task_id: str | None = None) -> None:
        try:
            await asyncio.to_thread(self.app.send_task, name, args=args, task_id=task_id)
        except Exception as exc:  # kombu's connection errors: the broker is away
            # The broker's address goes to the log, for the operator; the API client learns what happened.
            logger.warning("the broker (%s) did not take task %s (%s: %s)", self.app.conf.broker_url.split("@")[-1],
                           name, type(exc).__name__, exc)
            raise ExecutorUnavailable(
                f"the task broker did not take the run ({type(exc).__name__}); the operator should check that it "
                "is running", code="broker_unavailable") from exc

    async def submit(self, job: RunJob) -> None:
        if self._closing:
            raise ExecutorUnavailable("the server is shutting down; it takes no new runs", code="shutting_down")
        # A run on the workers needs Redis too (its events and cancel flag): refuse it now rather than
        # send a run that nobody could follow or cancel.
        try:
            async with asyncio.timeout(self.SUBMIT_PING_S):
                await self.channel.ping()
        except Exception as exc:  # redis' connection and timeout errors, the timeout's own
            logger.warning("Redis did not answer a run submission (%s: %s)", type(exc).__name__, exc)
            raise ExecutorUnavailable(
                f"Redis (AGENTADAPTER_REDIS_URL), which carries the events and cancels of runs on workers, does not "
                f"answer ({type(exc).__name__}); the operator should check that it is running",
                code="shared_state_unavailable") from exc
        resume = job.options.resume if job.options is not None else None
        if resume is not None:
            # A paused step: queued again with the decisions, for a worker to continue it from the run's state.
            async with self.db.writer() as session:
                requeued = await thread_store.requeue_paused_step(session, job.run_id, resume.step_key, {
                    "approvals": dict(resume.approvals), "reasons": dict(resume.reasons)})
            if not requeued:
                raise ExecutorUnavailable(f"the paused step {resume.step_key} of run {job.run_id} is not stored as "
                                          "paused; it cannot be resumed", code="step_not_paused")
            await self._send(STEP_TASK, [str(job.run_id), resume.step_key],
                             task_id=f"{step_task_id(job.run_id, resume.step_key)}:resume")
            return
        await self._send(DRIVE_TASK, [str(job.run_id)])

    def cancel(self, run_id: uuid.UUID, reason: str) -> bool:
        return False  # nothing runs in this process

    async def request_cancel(self, run_id: uuid.UUID, reason: str) -> CancelOutcome:
        await self.channel.request_cancel(run_id, reason)
        async with self.db.session() as session:
            queued = (await session.scalars(
                sa.select(RunStep.key).where(RunStep.run_id == run_id, RunStep.status == "queued"))).all()
        if queued:
            ids = [step_task_id(run_id, key) for key in queued]
            await asyncio.to_thread(self.app.control.revoke, ids)
        await self._send(DRIVE_TASK, [str(run_id)])  # closes the run as cancelled
        return "requested"

    async def start(self) -> None:
        await self.channel.ping()
        if self.reaper:
            self._reaper = asyncio.get_running_loop().create_task(
                reap_forever(self.db, self.channel, self.worker, self._send), name="run-reaper")

    def events(self, run_id: uuid.UUID, after: int = 0) -> AsyncIterator[RunEvent] | None:
        return self._events(run_id, after)

    async def _events(self, run_id: uuid.UUID, after: int) -> AsyncIterator[RunEvent]:
        """The persisted events with ``seq > after``, then the live ones from the run's Redis stream."""
        last = after
        async with self.db.session() as session:
            rows = (await session.scalars(
                sa.select(RunEventRow).where(RunEventRow.run_id == run_id, RunEventRow.seq > after)
                .order_by(RunEventRow.seq))).all()
        for row in rows:
            last = row.seq
            yield RunEvent(row.seq, row.type, str(run_id), row.agent, row.ts, dict(row.data or {}))  # type: ignore[arg-type]
            if row.type == "run_finished":
                return

        async def ended() -> bool:
            async with self.db.session() as session:
                status = await session.scalar(sa.select(Run.status).where(Run.id == run_id))
            return status is None or status in TERMINAL_RUN_STATUSES

        async for event in self.channel.read(run_id, last, ended):
            yield event

    @property
    def active(self) -> int:
        return 0  # runs execute on the workers

    async def shutdown(self, grace_s: float = 5.0) -> None:
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.channel.aclose()
        await asyncio.to_thread(self.app.close)  # the broker connections of the producer pool


