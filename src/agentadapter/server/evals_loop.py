"""The server's continuous-evaluation loop: every ``interval_s`` it asks the service which attached
experiments are due a re-run (their watched agent or workflow has a new version, or their schedule has
come) and starts them (:func:`agentadapter.service.evals.check_watched`).

A failed check is logged and tried again at the next interval, like the retention purge: housekeeping
never takes the server down. With several server processes each checks; a re-run starts only when the
attached experiment has none queued or running, and the check and the start happen under the database's
write lock (SQLite) or in one transaction, so two processes seldom start the same re-run - and when they do,
the second is an extra evaluation, not a wrong one. The lifespan starts the loop and stops it on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from agentadapter.server.background import BackgroundLoop
from agentadapter.service.common import ServiceParts
from agentadapter.service.evals import check_watched

__all__ = ["ContinuousEvaluation"]

logger = logging.getLogger("agentadapter.server.evals")


class ContinuousEvaluation(BackgroundLoop):
    """Starts the re-runs attached experiments are due, every ``interval_s`` seconds, until stopped."""

    def __init__(self, state: ServiceParts, *, interval_s: float = 30.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"the continuous-evaluation interval must be positive, not {interval_s} s")
        self.state = state
        self.interval_s = interval_s
        super().__init__()

    def start(self) -> None:
        self._spawn(self._loop(), "agentadapter-continuous-evaluation")

    async def run_once(self) -> list[uuid.UUID]:
        """One check; the experiments it started (none when it failed: the error is logged)."""
        try:
            started = await check_watched(self.state)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the continuous-evaluation check failed; it is tried again in %.0f s", self.interval_s)
            return []
        if started:
            logger.info("continuous evaluation started %d re-run(s): %s", len(started),
                        ", ".join(str(s) for s in started))
        return started

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.run_once()
