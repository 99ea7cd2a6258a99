"""The thread store: a thread as a library Session, a run folded into its thread once it has ended, and the
transitions of paused runs - on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from agentadapter.agents import LLMAgent, RunConfig
from agentadapter.agents.sessions import Compaction, run_in_session
from agentadapter.llm.messages import Message, TextPart
from agentadapter.store import runs as run_store
from agentadapter.store import threads
from agentadapter.store.database import Database
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import Tenant
from agentadapter.store.tenants import default_project
from agentadapter.testing import offline_llm


async def test_a_thread_is_a_session_that_an_agent_continues(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        thread = await threads.create_thread(session, tenant.id, title="chat")
    conversation = threads.ThreadSession(db, tenant.id, thread.id)
    llm = offline_llm()
    agent = LLMAgent("echo", model="test/echo")
    for text in ("first " * 30, "second " * 30, "third"):
        result = await run_in_session(agent, text, conversation, RunConfig(llm=llm),
                                      compaction=Compaction("trim", threshold=1, context_window=80, keep_last=2))
        assert result.status == "completed"
    kept = [m.text for m in await conversation.get_messages()]
    assert kept[-2:] == ["third", "third"] and ("first " * 30) not in kept
    await conversation.clear()
    assert await conversation.get_messages() == []
    await llm.aclose()


async def test_another_tenant_cannot_reach_the_thread(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    async with db.writer() as session:
        thread = await threads.create_thread(session, tenant.id)
    with pytest.raises(RecordNotFound):
        await threads.ThreadSession(db, other_tenant.id, thread.id).get_messages()


async def test_an_ended_run_joins_its_thread_once(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        thread = await threads.create_thread(session, tenant.id)
        project = await default_project(session, tenant.id)
        run = await run_store.create_run(session, tenant.id, input="where is my parcel?", project_id=project.id,
                                         strategy="sequential")
        thread.active_run_id = run.id
    async with db.writer() as session:
        loaded = await threads.get_thread(session, tenant.id, thread.id)
        assert await threads.fold_active_run(session, loaded) == "queued"  # still going: nothing added
        stored = await run_store.get_run(session, tenant.id, run.id)
        stored.status, stored.text = "completed", "In Lyon."
    async with db.writer() as session:
        loaded = await threads.get_thread(session, tenant.id, thread.id)
        assert await threads.fold_active_run(session, loaded) is None
        assert await threads.fold_active_run(session, loaded) is None  # once
        assert [(m["role"], m["parts"][0]["text"]) for m in loaded.messages] == [
            ("user", "where is my parcel?"), ("assistant", "In Lyon.")]


async def test_a_paused_run_is_claimed_once_and_can_be_closed(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        project = await default_project(session, tenant.id)
        run = await run_store.create_run(session, tenant.id, input="x", project_id=project.id, strategy="sequential")
        run.status = "paused"
    async with db.writer() as session:
        assert await threads.claim_paused_run(session, tenant.id, run.id, {})
        assert not await threads.claim_paused_run(session, tenant.id, run.id, {})  # the second decision loses
        await threads.pause_again(session, run.id)
    async with db.writer() as session:
        assert await threads.close_paused_run(session, uuid.uuid4(), run.id, "cancelled", {"type": "Cancelled",
                                                                                            "message": "x"}) is None
        assert await threads.close_paused_run(session, tenant.id, run.id, "cancelled",
                                              {"type": "Cancelled", "message": "by a test"}) is not None
    async with db.session() as session:
        assert (await run_store.get_run(session, tenant.id, run.id)).status == "cancelled"
        events = await run_store.list_events(session, tenant.id, run.id, after=0)
        assert events[-1].type == "run_finished"


def test_messages_of_a_run():
    assert threads.run_messages([Message("user", [TextPart("hi")]).to_dict()], "hello") == [
        {"role": "user", "parts": [{"kind": "text", "text": "hi"}]},
        {"role": "assistant", "parts": [{"kind": "text", "text": "hello"}]}]


async def test_a_run_whose_input_carried_the_history_adds_only_its_own_turn(db: Database, tenant: Tenant) -> None:
    history = [Message("user", [TextPart("my order is 42")]).to_dict(),
               Message("assistant", [TextPart("noted")]).to_dict()]
    async with db.writer() as session:
        thread = await threads.create_thread(session, tenant.id, messages=history)
        project = await default_project(session, tenant.id)
        run = await run_store.create_run(session, tenant.id, project_id=project.id, strategy="sequential",
                                         input=[*history, Message("user", [TextPart("where is it?")]).to_dict()])
        run.status, run.text = "completed", "In Lyon."
        thread.active_run_id = run.id
    async with db.writer() as session:
        loaded = await threads.get_thread(session, tenant.id, thread.id)
        await threads.fold_active_run(session, loaded)
        assert [m["parts"][0]["text"] for m in loaded.messages] == ["my order is 42", "noted", "where is it?",
                                                                    "In Lyon."]
