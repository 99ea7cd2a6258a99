"""Every inline run ends: leases on the runs a server process executes, a reaper for the others' lost ones,
and a final write that is retried until it lands.

The in-process executor (:class:`~agentadapter.server.executor.InlineExecutor`) creates each run
with a lease (``runs.lease_owner``, ``runs.lease_until``: this process, ``AGENTADAPTER_RUN_LEASE_S``
from now) and :class:`RunLeases` renews the leases of the runs it executes every third of that.
Every ``AGENTADAPTER_RUN_REAPER_INTERVAL_S`` each server process - and the Celery reaper
(:mod:`agentadapter.service.reaper`), the same store function - fails the unfinished runs whose
lease expired (their process was killed, or cut off from the database longer than the lease) with
a ``ServerLost`` error, closes their open agent runs, recomputes their usage from their usage
records and stores their ``run_finished`` event (:func:`agentadapter.store.runs.close_run`). The
updates are conditional, so several reapers do no harm. A run is not resumed: inline runs keep no
replayable step results (only the Celery executor's ``run_steps`` do), so it is failed and its
owner starts it again.

:class:`LeasedRunRecorder` is the executor's recorder: the run's end and its ``run_finished``
event are written in one transaction, retried with back-off while the database refuses, until it
succeeds or the process stops (then the lease expires and a reaper ends the run). A run ended
elsewhere meanwhile (a reaper, a cancel) is never written over, and the renewal notices it and
stops the run here.

A process that shuts down (SIGTERM: a restart, a scale-down) gives the runs it executes what is left of
``AGENTADAPTER_SHUTDOWN_GRACE_S`` to end by themselves, then hands the others over
(:meth:`RunLeases.hand_over`): their execution here stops without writing an end of its own, and each
is ended ``failed`` with a ``ServerShutdown`` error that says so, its agent runs closed and its
``run_finished`` event stored, in one conditional update. When that write cannot be made (the database
is away) the lease is left to expire and any other process's reaper ends the run (``ServerLost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from agentadapter.server.background import BackgroundLoop
from agentadapter.store import runs
from agentadapter.store.models import TERMINAL_RUN_STATUSES
from agentadapter.store.recorder import StoreRunRecorder

if TYPE_CHECKING:
    from agentadapter.orchestrator.events import RunEvent
    from agentadapter.orchestrator.result import RunResult
    from agentadapter.store.database import Database

__all__ = ["HANDED_OVER_RUNS", "LOST_RUNS", "LeasedRunRecorder", "RunLeases", "owner_id", "shutdown_error"]

logger = logging.getLogger("agentadapter.server")

HANDED_OVER_RUNS = Counter("agentadapter_runs_handed_over_total",
                           "Runs ended ServerShutdown because their server process shut down before they finished.")
LOST_RUNS = Counter("agentadapter_runs_lost_total",
                    "Runs failed because the server process executing them stopped (their lease expired).")

_FIRST_RETRY_S = 0.1
_LAST_RETRY_S = 10.0


def owner_id() -> str:
    """This server process, as a lease owner: host, process id, and a nonce (a pid can be reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def shutdown_error(run_id: uuid.UUID) -> dict[str, str]:
    """The error of a run handed over at shutdown (tenants read it: the process is not named)."""
    return {"type": "ServerShutdown", "message": (
        f"the server process executing run {run_id} was shut down (a restart or a scale-down) and the run did not "
        "finish within the shutdown's grace period; a run cannot move to another process while it runs, so "
        "it was ended here: start it again")}


class RunLeases(BackgroundLoop):
    """This process's leases on the runs it executes, and the reaper of everyone's expired leases."""

    def __init__(self, db: Database, *, lease_s: float, reaper_interval_s: float, owner: str | None = None) -> None:
        if lease_s <= 0 or reaper_interval_s <= 0:
            raise ValueError(f"the run lease ({lease_s} s) and the reaper interval ({reaper_interval_s} s) must be "
                             "positive")
        self.db = db
        self.lease_s = lease_s
        self.reaper_interval_s = reaper_interval_s
        self.owner = owner or owner_id()
        self.reaped = 0
        """Runs this process's reaper failed (tests and operators watch it)."""
        self.passes = 0
        """Reaper passes made, failed ones included."""
        super().__init__()

    def values(self) -> dict[str, Any]:
        """The lease columns of a run this process is about to execute."""
        return runs.lease_values(self.owner, self.lease_s)

    def start(self, running: Callable[[], Collection[uuid.UUID]], lost: Callable[[uuid.UUID], None]) -> None:
        """Renew the leases of ``running()`` runs; call ``lost(run_id)`` for one that was ended elsewhere."""
        self._spawn(self._loop(running, lost), "agentadapter-run-leases")

    async def renew(self, run_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Renew the leases on ``run_ids``; returns those still held."""
        if not run_ids:
            return set()
        async with self.db.writer() as session:
            return await runs.renew_leases(session, self.owner, run_ids, self.lease_s)

    async def reap(self) -> int:
        """One reaper pass: fail the runs whose lease expired; returns how many this pass ended."""
        try:
            async with self.db.writer() as session:
                closed = await runs.close_expired_leases(session)
        finally:
            self.passes += 1
        for run in closed:
            logger.warning("run %s (tenant %s) was failed: the server process executing it stopped and its lease "
                           "expired", run.run_id, run.tenant_id)
        if closed:
            LOST_RUNS.inc(len(closed))
            self.reaped += len(closed)
        return len(closed)

    async def hand_over(self, run_ids: Collection[uuid.UUID]) -> int:
        """End ``run_ids`` (runs this process stopped executing at shutdown) ``failed`` with a ``ServerShutdown``
        error; returns how many it ended. On a database error the leases expire and a reaper ends them."""
        if not run_ids:
            return 0
        ended = 0
        try:
            async with self.db.writer() as session:
                for run_id in run_ids:
                    if await runs.close_run(session, run_id, "failed", shutdown_error(run_id)) is not None:
                        ended += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("could not hand over %d run(s) at shutdown (%s: %s); their leases expire within %.1f s and "
                         "another server process's reaper ends them (ServerLost)", len(run_ids), type(exc).__name__,
                         exc, self.lease_s)
            return 0
        logger.warning("handed over %d run(s) still in progress at shutdown: ended failed (ServerShutdown)", ended)
        HANDED_OVER_RUNS.inc(ended)
        return ended

    async def _loop(self, running: Callable[[], Collection[uuid.UUID]], lost: Callable[[uuid.UUID], None]) -> None:
        renew_every = self.lease_s / 3
        tick = min(renew_every, self.reaper_interval_s)
        last_renewal = last_reap = -float("inf")
        while True:
            now = time.monotonic()
            if now - last_renewal >= renew_every:
                last_renewal = now
                await self._renew_quietly(running, lost)
            if now - last_reap >= self.reaper_interval_s:
                last_reap = now
                await self._reap_quietly()
            await asyncio.sleep(tick)

    async def _renew_quietly(self, running: Callable[[], Collection[uuid.UUID]],
                             lost: Callable[[uuid.UUID], None]) -> None:
        ids = set(running())
        try:
            held = await self.renew(ids)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is away: the next tick tries again (the lease has two more)
            logger.warning("could not renew the leases of %d run(s); retrying", len(ids), exc_info=True)
            return
        for run_id in ids - held:
            if run_id in running():  # not one that finished during the renewal
                lost(run_id)

    async def _reap_quietly(self) -> None:
        try:
            await self.reap()
        except asyncio.CancelledError:
            raise
        except Exception:  # housekeeping never takes the server down; the next pass tries again
            logger.warning("a run reaper pass failed; retrying in %.1f s", self.reaper_interval_s, exc_info=True)


class LeasedRunRecorder(StoreRunRecorder):
    """The store's recorder, whose final write of a run is retried until it lands (or the process stops)."""

    def __init__(self, db: Database, tenant_id: uuid.UUID, *, stopping: asyncio.Event,
                 handing_over: asyncio.Event | None = None) -> None:
        super().__init__(db, tenant_id)
        self.stopping = stopping
        self.handing_over = handing_over
        """Set at shutdown when the run is stopped to be handed over: its end is written by the hand-over."""
        self._finished: RunEvent | None = None

    async def save_event(self, event: RunEvent) -> None:
        if event.type == "run_finished":
            # Written with the run's end, in its transaction: a run is ended exactly when it has this event.
            self._finished = event
            return
        await super().save_event(event)

    async def save_run(self, run: RunResult) -> None:
        # A paused run's write is final too: it gives up its lease (nothing executes it until it is resumed).
        if run.status not in TERMINAL_RUN_STATUSES and run.status != "paused":
            async with self.db.writer() as session:
                await runs.update_unfinished_run(session, self.tenant_id, run)
            return
        if self.handing_over is not None and self.handing_over.is_set():
            logger.info("run %s was stopped by the shutdown; the hand-over writes its end", run.run_id)
            return
        delay = _FIRST_RETRY_S
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.db.writer() as session:
                    written = await runs.end_run_with_result(session, self.tenant_id, run, self._finished)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.stopping.is_set():
                    logger.error("the end of run %s (%s) could not be written before the server stopped (%s: %s); "
                                 "its lease expires and a reaper ends it", run.run_id, run.status,
                                 type(exc).__name__, exc)
                    raise
                logger.warning("could not write the end of run %s (%s), attempt %d (%s: %s); retrying in %.1f s",
                               run.run_id, run.status, attempt, type(exc).__name__, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, _LAST_RETRY_S)
                continue
            if not written:
                logger.info("run %s had been ended elsewhere (a reaper or a cancel); its end here (%s) is not "
                            "written", run.run_id, run.status)
            elif attempt > 1:
                logger.warning("the end of run %s (%s) was written at attempt %d", run.run_id, run.status, attempt)
            return
