"""The reaper: puts back what dead workers and lost messages left behind, and ends runs that never will.

Each pass (every ``AGENTADAPTER_REAPER_INTERVAL_S``, in every API instance: the updates are
conditional, so several reapers do no harm):

- a running step whose lease expired (its worker was killed and the broker did not deliver the
  task again) goes back to ``queued`` and is sent again;
- a step queued for ``AGENTADAPTER_STEP_REQUEUE_S`` and never claimed (its message was lost) is
  sent again, and so is the drive of a run idle that long with nothing queued or running;
- a run still unfinished ``AGENTADAPTER_RUN_MAX_AGE_S`` after it was created is failed, with an
  error that says so;
- a run an inline server process executed, whose lease expired (that process died), is failed
  (``ServerLost``), as every inline server process's own reaper does
  (:mod:`agentadapter.server.run_leases`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter

from agentadapter.orchestrator.events import RunEvent
from agentadapter.service.channel import RunChannel
from agentadapter.service.queue import DRIVE_TASK, STEP_TASK
from agentadapter.service.worker_settings import WorkerSettings
from agentadapter.store import runs as run_store
from agentadapter.store import steps as step_store
from agentadapter.store.database import Database
from agentadapter.store.models import Run, utcnow

__all__ = ["REAPER_ACTIONS", "ReapReport", "reap", "reap_forever"]

REAPER_ACTIONS = Counter(
    "agentadapter_reaper_actions_total",
    "What the reaper did: requeued (a dead worker's step), resent (a lost step), redriven (an idle run), "
    "failed (an overdue run), lost (an inline run whose server process died).", ["action"],
)

Sender = Callable[[str, list[str], str | None], Awaitable[None]]
"""Sends a task: (task name, args, task id or None)."""


@dataclass(slots=True)
class ReapReport:
    requeued: int = 0
    resent: int = 0
    redriven: int = 0
    failed: int = 0
    lost: int = 0


async def reap(db: Database, channel: RunChannel, settings: WorkerSettings, send: Sender) -> ReapReport:
    """One pass; returns what it did."""
    report = ReapReport()
    now = utcnow()
    again = now - timedelta(seconds=settings.step_requeue_s)
    steps: list[tuple[uuid.UUID, str]] = []
    async with db.writer() as session:
        for run_id, key in await step_store.expired_steps(session, now):
            if await step_store.requeue(session, run_id, key, expired_before=now):
                steps.append((run_id, key))
                report.requeued += 1
        for run_id, key in await step_store.stale_queued_steps(session, again):
            if await step_store.requeue(session, run_id, key, expired_before=None):
                steps.append((run_id, key))
                report.resent += 1
        idle = list(await step_store.idle_runs(session, again))
        for run_id in idle:
            await step_store.touch_run(session, run_id)
        overdue = list(await step_store.overdue_runs(session, now - timedelta(seconds=settings.run_max_age_s)))
        report.lost = len(await run_store.close_expired_leases(session, now))
    for run_id, key in steps:
        # A fresh task id: the first one may be among the revoked, and workers drop revoked ids.
        await send(STEP_TASK, [str(run_id), key], f"step:{run_id}:{key}:{uuid.uuid4().hex[:8]}")
    for run_id in idle:
        await send(DRIVE_TASK, [str(run_id)], None)
        report.redriven += 1
    for run_id, tenant_id in overdue:
        if await _fail_overdue(db, channel, settings, run_id, tenant_id):
            report.failed += 1
    for action in ("requeued", "resent", "redriven", "failed", "lost"):
        if count := getattr(report, action):
            REAPER_ACTIONS.labels(action).inc(count)
    return report


async def _fail_overdue(db: Database, channel: RunChannel, settings: WorkerSettings, run_id: uuid.UUID,
                        tenant_id: uuid.UUID) -> bool:
    error = {"type": "RunTimeout", "message": (
        f"run {run_id} was still unfinished {settings.run_max_age_s:g} s after it was created "
        "(AGENTADAPTER_RUN_MAX_AGE_S), so it was failed; check that workers are running (`agentadapter worker`) "
        "and start the run again")}
    async with db.writer() as session:
        if not await step_store.end_run(session, run_id, {"status": "failed", "error": error,
                                                          "finished_at": utcnow()}):
            return False
        run = await session.get(Run, run_id)
        seq = (run.last_seq if run is not None else 0) + 1
        data = {"status": "failed", "output": None, "usage": {}, "cost_usd": run.cost_usd if run else 0.0,
                "duration_ms": 0.0, "error": error}
        ts = time.time()
        await step_store.record_event_once(session, tenant_id, run_id, seq, "run_finished", None, ts, data)
    await channel.publish(RunEvent(seq, "run_finished", str(run_id), None, ts, data))
    return True


async def reap_forever(db: Database, channel: RunChannel, settings: WorkerSettings, send: Sender) -> None:
    """:func:`reap` every ``reaper_interval_s`` until cancelled; a failed pass is logged and retried."""
    import logging

    logger = logging.getLogger("agentadapter.worker")
    while True:
        await asyncio.sleep(settings.reaper_interval_s)
        try:
            report = await reap(db, channel, settings, send)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("a reaper pass failed; the next one tries again", exc_info=True)
            continue
        if report.requeued or report.resent or report.redriven or report.failed or report.lost:
            logger.warning("reaper: %d step(s) of dead workers re-enqueued, %d lost step(s) and %d idle run(s) "
                           "sent again, %d overdue run(s) failed, %d run(s) of dead server processes failed",
                           report.requeued, report.resent, report.redriven, report.failed, report.lost)
