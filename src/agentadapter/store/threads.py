"""Threads (a tenant's conversations that runs continue) and the transitions of paused runs.

A thread keeps its messages as dicts of the neutral message model (``role``, ``parts``). A run that continues
a thread is the thread's ``active_run_id`` until it has ended; then :func:`fold_active_run` adds its input and
answer to the messages (a run that did not complete adds nothing), so the thread's history is right whichever
process or worker executed the run and however long ago. :class:`ThreadSession` is the library's
:class:`~agentadapter.agents.sessions.Session` over a thread, for code that holds a database.

A paused run (waiting for a human's approval) leaves ``paused`` through a conditional update: back
to ``queued`` when the decisions resume it (:func:`claim_paused_run`: one of two concurrent
approvals wins), or closed when it is cancelled (:func:`close_paused_run`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.sessions import Session
from agentadapter.llm.messages import Message, TextPart, coerce_messages
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import TERMINAL_RUN_STATUSES, Run, RunStep, utcnow
from agentadapter.store.runs import ClosedRun, close_run
from agentadapter.store.threads_models import Thread

if TYPE_CHECKING:
    from agentadapter.store.database import Database

__all__ = [
    "ThreadSession",
    "claim_paused_run",
    "close_paused_run",
    "create_thread",
    "delete_thread",
    "fold_active_run",
    "get_thread",
    "list_threads",
    "pause_again",
    "requeue_paused_step",
    "run_messages",
]


async def create_thread(
    session: AsyncSession, tenant_id: uuid.UUID, *, title: str = "", agent_id: uuid.UUID | None = None,
    messages: Sequence[Mapping[str, Any]] = (), compaction: Mapping[str, Any] | None = None,
    created_by: uuid.UUID | None = None,
) -> Thread:
    thread = Thread(tenant_id=tenant_id, title=title, agent_id=agent_id, messages=[dict(m) for m in messages],
                    compaction=dict(compaction or {}), compactions=0, created_by=created_by)
    session.add(thread)
    await session.flush()
    return thread


async def get_thread(session: AsyncSession, tenant_id: uuid.UUID, thread_id: uuid.UUID, *,
                     for_update: bool = False) -> Thread:
    statement = sa.select(Thread).where(Thread.tenant_id == tenant_id, Thread.id == thread_id)
    if for_update:
        statement = statement.with_for_update()  # PostgreSQL: two runs on one thread queue here
    thread: Thread | None = await session.scalar(statement)
    if thread is None:
        raise RecordNotFound("thread", thread_id)
    return thread


async def list_threads(session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 100) -> Sequence[Thread]:
    statement = (sa.select(Thread).where(Thread.tenant_id == tenant_id)
                 .order_by(Thread.created_at.desc(), Thread.id.desc()).limit(limit))
    return (await session.scalars(statement)).all()


async def delete_thread(session: AsyncSession, tenant_id: uuid.UUID, thread_id: uuid.UUID) -> None:
    thread = await get_thread(session, tenant_id, thread_id)
    await session.delete(thread)
    await session.flush()


def run_messages(run_input: Any, answer: str) -> list[dict[str, Any]]:
    """What a completed run adds to its thread: its input message(s) and its answer."""
    messages = [m.to_dict() for m in coerce_messages(run_input)] if run_input else []
    return [*messages, Message("assistant", [TextPart(answer)]).to_dict()]


async def fold_active_run(session: AsyncSession, thread: Thread) -> str | None:
    """Add the thread's ended run to its messages; the status of the run still going on (None when none is)."""
    if thread.active_run_id is None:
        return None
    run = await session.scalar(sa.select(Run).where(Run.tenant_id == thread.tenant_id, Run.id == thread.active_run_id))
    if run is not None and run.status not in TERMINAL_RUN_STATUSES:
        return run.status
    if run is not None and run.status == "completed":
        added = run_messages(run.input, run.text)
        history = list(thread.messages)
        if len(added) > len(history) and added[: len(history)] == history:
            added = added[len(history):]  # a run whose input carried the thread's history (runs on workers)
        thread.messages = [*history, *added]
    thread.active_run_id = None
    thread.updated_at = utcnow()
    await session.flush()
    return None


async def claim_paused_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID,
                           lease: Mapping[str, Any], *, status: str = "queued") -> bool:
    """Move a paused run back to ``status`` (``queued`` for the server's executor, with its lease;
    ``running`` for queue workers, which have started it already); False when it was not paused."""
    updated = await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == run_id, Run.status == "paused")
        .values(status=status, updated_at=utcnow(), **dict(lease))
    )
    return int(getattr(updated, "rowcount", 0) or 0) == 1


async def requeue_paused_step(session: AsyncSession, run_id: uuid.UUID, key: str,
                              decisions: Mapping[str, Any]) -> bool:
    """Queue a queue worker's paused step again with the human's ``decisions`` (``{approvals, reasons}``)."""
    request = await session.scalar(sa.select(RunStep.request).where(RunStep.run_id == run_id, RunStep.key == key))
    if request is None:
        return False
    updated = await session.execute(
        sa.update(RunStep).where(RunStep.run_id == run_id, RunStep.key == key, RunStep.status == "done")
        .values(status="queued", result=None, lease_until=None, updated_at=utcnow(),
                request={**dict(request), "resume": dict(decisions)})
    )
    return int(getattr(updated, "rowcount", 0) or 0) == 1


async def close_paused_run(session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID,
                           status: str, error: Mapping[str, Any]) -> ClosedRun | None:
    """End a paused run (cancelled): as :func:`~agentadapter.store.runs.close_run` ends an unfinished one."""
    updated = await session.execute(
        sa.update(Run).where(Run.tenant_id == tenant_id, Run.id == run_id, Run.status == "paused")
        .values(status="running")  # in this transaction only: close_run takes it from here
    )
    if not int(getattr(updated, "rowcount", 0) or 0):
        return None
    return await close_run(session, run_id, status, error, tenant_id=tenant_id)


async def pause_again(session: AsyncSession, run_id: uuid.UUID) -> None:
    """Put a claimed run back to ``paused`` (the executor did not take it): its decisions can be given again."""
    await session.execute(sa.update(Run).where(Run.id == run_id, Run.status.in_(("queued", "running")))
                          .values(status="paused", lease_owner=None, lease_until=None, updated_at=utcnow()))


class ThreadSession(Session):
    """A thread of the service database as a library :class:`~agentadapter.agents.sessions.Session`."""

    def __init__(self, db: Database, tenant_id: uuid.UUID, thread_id: uuid.UUID) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.thread_id = thread_id
        self.session_id = str(thread_id)

    async def get_messages(self) -> list[Message]:
        async with self.db.session() as session:
            thread = await get_thread(session, self.tenant_id, self.thread_id)
            return coerce_messages(thread.messages) if thread.messages else []

    async def add_messages(self, messages: Sequence[Message]) -> None:
        async with self.db.writer() as session:
            thread = await get_thread(session, self.tenant_id, self.thread_id, for_update=True)
            thread.messages = [*thread.messages, *(m.to_dict() for m in messages)]
            thread.updated_at = utcnow()

    async def replace_messages(self, messages: Sequence[Message]) -> None:
        async with self.db.writer() as session:
            thread = await get_thread(session, self.tenant_id, self.thread_id, for_update=True)
            thread.messages = [m.to_dict() for m in messages]
            thread.updated_at = utcnow()
