"""Threads: a tenant's conversations, and how a run continues one.

A thread is created empty (or with messages), optionally with a default agent and its compaction
settings (``{strategy: trim | summarize, context_window, threshold, keep_last}``, checked here: a
422 names the field). A run on a thread (:func:`continue_thread`, called when the run is started)
first takes the previous run's input and answer into the thread once that run has ended, refuses
(409) while it still runs or waits for an approval, compacts the history when it nears the model's
context window (a summary is written by the agent's model through the tenant's facade), and hands
the history to the run as stored (under a tenant policy that masks personal data: with its placeholders);
the run becomes the thread's active run, and its own input and answer join the thread when it has
ended. Another tenant's thread is a 404.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.agents.context import AgentInput
from agentadapter.agents.sessions import Compaction, compact
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Message, coerce_messages
from agentadapter.service.common import Caller, ServiceParts, invalid, record
from agentadapter.service.errors import Conflict
from agentadapter.store import agents as agent_store
from agentadapter.store import threads as store
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.threads_models import Thread

__all__ = [
    "ThreadHistory",
    "ThreadRequest",
    "continue_thread",
    "create_thread",
    "default_agent",
    "delete_thread",
    "read_thread",
]

_COMPACTION_KEYS = frozenset({"strategy", "threshold", "context_window", "keep_last"})


@dataclass(frozen=True, slots=True)
class ThreadRequest:
    """A new thread: its title, default agent, first messages and compaction settings."""

    title: str = ""
    agent_id: uuid.UUID | None = None
    messages: Sequence[Mapping[str, Any]] = ()
    compaction: Mapping[str, Any] | None = None


@dataclass(slots=True)
class ThreadHistory:
    """What a run on a thread starts from: the thread, and its (compacted) history."""

    thread: Thread
    history: list[Message]
    compacted: bool = False


def compaction_of(settings: Mapping[str, Any] | None, param: str = "compaction") -> Compaction:
    """The thread's compaction settings as the library's :class:`Compaction`; a 422 naming what is wrong."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - _COMPACTION_KEYS)
    if unknown:
        raise invalid(param, f"unknown setting(s) {', '.join(unknown)}; the settings are "
                             f"{', '.join(sorted(_COMPACTION_KEYS))}")
    try:
        return Compaction(**{k: v for k, v in settings.items() if v is not None})
    except (InvalidRequestError, TypeError) as exc:
        raise invalid(param, str(exc)) from exc


async def create_thread(session: AsyncSession, caller: Caller, data: ThreadRequest) -> Thread:
    compaction = compaction_of(data.compaction)
    if data.agent_id is not None:
        try:
            await agent_store.get_agent(session, caller.tenant_id, data.agent_id)
        except RecordNotFound as exc:
            raise invalid("agent_id", f"no agent {data.agent_id} in this tenant; create it first (POST /v1/agents)",
                          code="unknown_agent") from exc
    try:
        messages = [m.to_dict() for m in coerce_messages(list(data.messages))] if data.messages else []
    except InvalidRequestError as exc:
        raise invalid("messages", str(exc)) from exc
    stored = {k: v for k, v in compaction.to_dict().items() if k in (data.compaction or {})}
    thread = await store.create_thread(session, caller.tenant_id, title=data.title, agent_id=data.agent_id,
                                       messages=messages, compaction=stored, created_by=caller.user)
    await record(session, caller, "thread.create", "thread", thread.id, {"title": data.title})
    await session.commit()
    return thread


async def read_thread(session: AsyncSession, caller: Caller, thread_id: uuid.UUID) -> tuple[Thread, str | None]:
    """The thread with its ended run taken in, and the status of the run still going on (None: none)."""
    thread = await store.get_thread(session, caller.tenant_id, thread_id)
    active = await store.fold_active_run(session, thread)
    await session.commit()
    await session.refresh(thread)
    return thread, active


async def delete_thread(session: AsyncSession, caller: Caller, thread_id: uuid.UUID) -> None:
    await store.delete_thread(session, caller.tenant_id, thread_id)
    await record(session, caller, "thread.delete", "thread", thread_id)
    await session.commit()


async def default_agent(session: AsyncSession, caller: Caller, thread_id: uuid.UUID) -> uuid.UUID:
    """The agent a run on the thread uses when it names none (the thread's ``agent_id``)."""
    thread = await store.get_thread(session, caller.tenant_id, thread_id)
    if thread.agent_id is None:
        raise invalid("agent_id", f"thread {thread_id} has no agent of its own; give agent_id (or create the "
                                  "thread with one)", code="missing_target")
    return thread.agent_id


async def continue_thread(session: AsyncSession, state: ServiceParts, caller: Caller, thread_id: uuid.UUID,
                          model: str | None) -> ThreadHistory:
    """The history a new run on the thread starts from (compacted and stored if it had to be).

    Raises Conflict (409) while the thread's previous run still runs or waits for an approval.
    """
    thread = await store.get_thread(session, caller.tenant_id, thread_id, for_update=True)
    active = await store.fold_active_run(session, thread)
    if active is not None:
        raise Conflict(f"thread {thread_id} is being continued by run {thread.active_run_id} ({active}); wait for it "
                       "to end (or approve or cancel it) before the next run", code="thread_busy", param="thread_id")
    history = coerce_messages(thread.messages) if thread.messages else []
    compacted = False
    if history and model:
        llm = await state.tenant_llms.get(caller.tenant_id)
        llm = llm.derive(tags={"source": "thread_compaction", "thread": str(thread_id)})
        result = await compact(history, model, compaction_of(thread.compaction), llm=llm)
        if result.compacted:
            # The run is given the history as stored: the summary too went through the tenant's storage hook.
            history, compacted = await store.replace_history(session, thread, result.messages), True
    return ThreadHistory(thread, history, compacted)


def thread_task(history: Sequence[Message], task: AgentInput) -> list[Message]:
    """The messages a run on a thread is given: the history, then its own input."""
    return [*history, *coerce_messages(task)]
