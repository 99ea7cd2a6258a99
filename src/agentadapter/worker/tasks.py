"""The Celery tasks: ``agentadapter.drive`` (advance a run) and ``agentadapter.step`` (run one agent step).

Both run their coroutine on the worker process's loop (:func:`agentadapter.worker.app.runtime`)
and are safe to deliver more than once (see :mod:`agentadapter.worker.engine`). A task that fails
is logged, not retried: the reaper re-sends what a failure left behind.
"""

from __future__ import annotations

import logging
import uuid

from agentadapter.worker.app import DRIVE_TASK, STEP_TASK, celery_app, runtime
from agentadapter.worker.engine import drive_run, execute_step

__all__ = ["drive", "step"]

logger = logging.getLogger("agentadapter.worker")


@celery_app.task(name=DRIVE_TASK)  # type: ignore[untyped-decorator]
def drive(run_id: str) -> None:
    rt = runtime()
    rt.run(drive_run(rt, uuid.UUID(run_id)))


@celery_app.task(name=STEP_TASK)  # type: ignore[untyped-decorator]
def step(run_id: str, key: str) -> None:
    rt = runtime()
    rt.run(execute_step(rt, uuid.UUID(run_id), key))
