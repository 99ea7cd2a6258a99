"""The server's periodic purge: data older than ``AGENTADAPTER_RETENTION_DAYS`` goes every interval.

:class:`RetentionTask` runs :func:`agentadapter.store.retention.purge` every
``AGENTADAPTER_RETENTION_INTERVAL_S`` seconds (the first one an interval after start-up, so a start
is never slowed by a backlog) and logs what it deleted. A failed purge is logged and tried again
at the next interval: housekeeping must never take the server down. The lifespan (``app.py``)
starts it and cancels it on shutdown. With several server processes each purges; the deletes are
idempotent, so they only repeat each other's (cheap, empty) queries.

A tenant whose compliance policy sets its own retention is purged by that period instead
(:func:`agentadapter.service.compliance.purge_by_policy`), and each round also carries out the
erasures whose soft-delete window has passed (:func:`agentadapter.service.compliance.execute_due_erasures`;
``erasures`` says where they reach: the file storage and Redis besides the database).
"""

from __future__ import annotations

import asyncio
import logging

from agentadapter.server.background import BackgroundLoop
from agentadapter.service.compliance import ErasureParts, execute_due_erasures, purge_by_policy
from agentadapter.store.database import Database
from agentadapter.store.retention import PurgeReport, cutoff_for

__all__ = ["RetentionTask"]

logger = logging.getLogger("agentadapter.server.retention")


class RetentionTask(BackgroundLoop):
    """Purges old data every ``interval_s`` seconds until stopped."""

    def __init__(self, db: Database, *, retention_days: float, interval_s: float,
                 erasures: ErasureParts | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"the purge interval must be positive, not {interval_s} s")
        if retention_days != 0:  # 0: the server keeps everything (tenants' own periods and erasures still apply)
            cutoff_for(retention_days)  # refuse a nonsensical period at start-up, not an hour later
        self.db = db
        self.retention_days = retention_days
        self.interval_s = interval_s
        self.runs = 0
        """Purges that finished (successfully or not): what tests and operators watch."""
        self.last_report: PurgeReport | None = None
        self.erasures = erasures or ErasureParts(db=db)
        """Where due erasures reach (the app sets the file storage and Redis once it has them)."""
        super().__init__()

    def start(self) -> None:
        self._spawn(self._loop(), "agentadapter-retention")

    async def run_once(self) -> PurgeReport | None:
        """One purge; its report, or None when it failed (the error is logged)."""
        try:
            report = await purge_by_policy(self.db, default_days=self.retention_days)
            self.last_report = report
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the retention purge failed; it is tried again in %.0f s", self.interval_s)
            return None
        finally:
            self.runs += 1
        if report.total:
            logger.info("retention purge (older than %s): deleted %s", report.cutoff.isoformat(), report.summary())
        try:
            await execute_due_erasures(self.erasures)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the due erasures could not be read; they are tried again in %.0f s", self.interval_s)
        return report

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.run_once()
