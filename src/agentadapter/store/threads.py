"""Threads (a tenant's conversations that runs continue) and the transitions of paused runs.

A thread keeps its messages as dicts of the neutral message model (``role``, ``parts``). A run that continues
a thread is the thread's ``active_run_id`` until it has ended; then :func:`fold_active_run` adds its input and
answer to the messages (a run that did not complete adds nothing), so the thread's history is right whichever
process or worker executed the run and however long ago. :class:`ThreadSession` is the library's
:class:`~agentadapter.agents.sessions.Session` over a thread, for code that holds a database.

Every write of a thread's messages (created, a run's turn added, compacted, a session's additions) goes
through the storage hook of run records (:func:`~agentadapter.store.compliance.storage_anonymizer`, in
:func:`stored_messages`): under a tenant policy that masks or hashes personal data the thread keeps the
placeholders, never the raw text, and the runs continuing it are given that history.

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
from agentadapter.store.compliance import storage_anonymizer
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
    "replace_history",
    "requeue_paused_step",
    "run_messages",
    "stored_messages",
]


async def stored_messages(session: AsyncSession, tenant_id: uuid.UUID,
                          messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` as the tenant's thread stores them: through the storage hook (masked or hashed by its policy).

    Applying the hook again to what it stored changes nothing (a placeholder holds no personal data), so
    messages read back from the thread may be passed through it with new ones.
    """
    plain = [dict(m) for m in messages]
    anonymizer = await storage_anonymizer(session, tenant_id)
    return list(anonymizer.value(plain)) if anonymizer is not None else plain


async def create_thread(
    session: AsyncSession, tenant_id: uuid.UUID, *, title: str = "", agent_id: uuid.UUID | None = None,
    messages: Sequence[Mapping[str, Any]] = (), compaction: Mapping[str, Any] | None = None,
    created_by: uuid.UUID | None = None,
) -> Thread:
    thread = Thread(tenant_id=tenant_id, title=title, agent_id=agent_id,
                    messages=await stored_messages(session, tenant_id, messages),
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
        # The run's row is masked by its end already; passing it through the hook again also covers a run
        # that ended before its tenant's policy did, and makes it comparable with the stored history.
        added = await stored_messages(session, thread.tenant_id, run_messages(run.input, run.text))
        history = list(thread.messages)
        if len(added) > len(history) and added[: len(history)] == history:
            added = added[len(history):]  # a run whose input carried the thread's history (runs on workers)
        thread.messages = [*history, *added]
    thread.active_run_id = None
    thread.updated_at = utcnow()
    await session.flush()
    return None


async def replace_history(session: AsyncSession, thread: Thread, messages: Sequence[Message]) -> list[Message]:
    """Store a compacted history as the thread's messages (through the storage hook); the history as stored."""
    thread.messages = await stored_messages(session, thread.tenant_id, [m.to_dict() for m in messages])
    thread.compactions += 1
    thread.updated_at = utcnow()
    await session.flush()
    return coerce_messages(thread.messages) if thread.messages else []


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
            added = await stored_messages(session, self.tenant_id, [m.to_dict() for m in messages])
            thread.messages = [*thread.messages, *added]
            thread.updated_at = utcnow()

    async def replace_messages(self, messages: Sequence[Message]) -> None:
        async with self.db.writer() as session:
            thread = await get_thread(session, self.tenant_id, self.thread_id, for_update=True)
            thread.messages = await stored_messages(session, self.tenant_id, [m.to_dict() for m in messages])
            thread.updated_at = utcnow()
