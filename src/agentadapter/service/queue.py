"""The Celery client side: the task names, the broker's configuration, and the app that sends tasks.

The API's executor and the reaper only *send* tasks, by name; workers (:mod:`agentadapter.worker`)
register the tasks under the same names, and configure their own app with :func:`configure`, so both
ends agree on the broker, the queue and the delivery guarantees: at least once
(``task_acks_late`` with ``task_reject_on_worker_lost``, so a task whose worker died is delivered
again) and ``worker_prefetch_multiplier=1``, so a busy worker does not hoard tasks. No result
backend: results live in the database.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from agentadapter.llm.errors import ConfigurationError
from agentadapter.service.worker_settings import WorkerSettings

if TYPE_CHECKING:
    from celery import Celery

    from agentadapter.config import Settings

__all__ = ["DRIVE_TASK", "STEP_TASK", "broker_url", "client_app", "configure", "step_task_id"]

DRIVE_TASK = "agentadapter.drive"
"""Advance a run: replay its strategy on the stored step outcomes, enqueue what it waits on, or end it."""
STEP_TASK = "agentadapter.step"
"""Run one agent step of a run."""


def step_task_id(run_id: uuid.UUID, key: str) -> str:
    """The Celery task id of a run's step (stable, so a revoke names it)."""
    return f"step:{run_id}:{key}"


def broker_url(settings: Settings) -> str:
    url = settings.broker_url or settings.redis_url
    if not url:
        raise ConfigurationError(
            "AGENTADAPTER_EXECUTOR=celery needs a broker: set AGENTADAPTER_BROKER_URL (redis://... or amqp://...) "
            "or AGENTADAPTER_REDIS_URL"
        )
    return url


def configure(app: Celery, settings: Settings, worker: WorkerSettings | None = None) -> Celery:
    """Point a Celery app at the configured broker, with the delivery guarantees runs rely on; returns it."""
    worker = worker or WorkerSettings()
    if not settings.redis_url:
        raise ConfigurationError(
            "AGENTADAPTER_EXECUTOR=celery needs Redis for run events and cancels: set AGENTADAPTER_REDIS_URL"
        )
    app.conf.update(
        broker_url=broker_url(settings),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=worker.queue,
        broker_transport_options={"visibility_timeout": worker.broker_visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


def client_app(settings: Settings, worker: WorkerSettings) -> Celery:
    """A Celery app of its own for a server's executor: it only sends tasks (by name) and revokes them."""
    from celery import Celery  # the celery extra: imported only where runs go to workers

    return configure(Celery("agentadapter-client"), settings, worker)
