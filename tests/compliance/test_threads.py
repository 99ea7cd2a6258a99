"""A tenant's policy covers its conversations: a thread's messages (those it starts with, each run's input and
answer, a compaction's summary, a library session's additions) are stored masked or hashed, the API shows them
so, and the runs continuing the thread see that history; a keep-mode tenant's threads are stored as given.
On SQLite and PostgreSQL, read from the raw rows of the threads table."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from agentadapter.agents.sessions import SUMMARY_PREFIX
from agentadapter.llm.messages import Message, Request, TextPart
from agentadapter.store import runs as run_store
from agentadapter.store import threads
from agentadapter.store.tenants import default_project
from agentadapter.store.threads import ThreadSession
from agentadapter.store.threads_models import Thread
from agentadapter.testing import FunctionBackend, offline_llm
from server.conftest import Api, AppFactory

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
ANSWER_EMAIL = "desk.support@example.org"
"""Every answer of the model (the summary too) names this address: answers are masked as inputs are."""
RAW = (EMAIL, CARD, IBAN, ANSWER_EMAIL)


def _answering(seen: list[list[str]]) -> FunctionBackend:
    def answer(request: Request) -> str:
        seen.append([m.text for m in request.messages if m.role != "system"])
        return f"answer {len(seen)}: noted, write to {ANSWER_EMAIL} " + "about the parcel " * 3

    return FunctionBackend(answer, name="rec")


async def _stored_messages(api: Api, thread_id: str) -> str:
    """The thread's messages as the threads table holds them (the raw column, not through the model)."""
    async with api.state.db.session() as session:
        raw = await session.scalar(sa.text("SELECT messages FROM threads WHERE id = :id"),
                                   {"id": _id_param(api, thread_id)})
    assert raw is not None
    return raw if isinstance(raw, str) else json.dumps(raw)


def _id_param(api: Api, thread_id: str) -> Any:
    # How each dialect stores a UUID primary key: SQLite as 32 hex digits, PostgreSQL as a uuid.
    return uuid.UUID(thread_id).hex if api.state.db.dialect == "sqlite" else uuid.UUID(thread_id)


async def _run(api: Api, agent: dict[str, Any], thread_id: str, text: str) -> dict[str, Any]:
    started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "thread_id": thread_id,
                                                          "input": text})
    assert started.status_code == 202, started.text
    done = await api.wait_run(started.json()["id"])
    assert done["status"] == "completed", done
    return done


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_masked_thread_holds_no_personal_data_across_two_runs(make_api: AppFactory, database: str) -> None:
    seen: list[list[str]] = []
    llm = offline_llm(backends={"rec": _answering(seen)})
    async with make_api(database=database, llm=llm) as api:
        policy = await api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "mask"})
        assert policy.status_code == 200, policy.text
        agent = await api.create_agent(model="rec/m")
        created = await api.request("POST", "/v1/threads", json={
            "title": "billing", "messages": [{"role": "user", "content": f"I am {EMAIL}"}]})
        assert created.status_code == 201, created.text
        thread_id = created.json()["id"]
        assert EMAIL not in json.dumps(created.json()["messages"])

        await _run(api, agent, thread_id, f"Refund to card {CARD}, or IBAN {IBAN}; mail {EMAIL}")
        second = await _run(api, agent, thread_id, f"Did it reach {EMAIL}?")
        # A run's turn joins its thread once the run has ended, when the thread is next read or continued.
        read = await api.request("GET", f"/v1/threads/{thread_id}")
        assert read.status_code == 200, read.text

        stored = await _stored_messages(api, thread_id)
        for value in RAW:
            assert value not in stored, value
        for placeholder in ("[EMAIL]", "[CARD]", "[IBAN]"):
            assert placeholder in stored, placeholder
        # Continuing the thread, the second run's model was given the masked history: placeholders, not data.
        history = seen[1][:-1]
        assert history and "[CARD]" in " ".join(history)
        assert not [value for value in RAW for text in history if value in text]
        # The API shows the thread as stored: its creation, both runs' inputs and answers, masked.
        messages = read.json()["messages"]
        assert len(messages) == 5 and read.json()["active_run_id"] is None
        texts = [part["text"] for message in messages for part in message["parts"]]
        assert texts[0] == "I am [EMAIL]" and texts[-2] == "Did it reach [EMAIL]?"
        assert texts[-1] == second["text"] and "[EMAIL]" in texts[-1]
        for value in RAW:
            assert value not in json.dumps(read.json()), value

        # The library's session over the thread writes through the same hook.
        tenant = await api.tenant()
        session = ThreadSession(api.state.db, tenant.id, uuid.UUID(thread_id))
        await session.add_messages([Message("user", [TextPart(f"also {EMAIL}")])])
        assert (await session.get_messages())[-1].text == "also [EMAIL]"
        await session.replace_messages([Message("user", [TextPart(f"card {CARD}")])])
        assert (await session.get_messages())[0].text == "card [CARD]"
        assert CARD not in await _stored_messages(api, thread_id)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_compaction_summary_is_stored_masked(make_api: AppFactory, database: str) -> None:
    seen: list[list[str]] = []
    llm = offline_llm(backends={"rec": _answering(seen)})
    async with make_api(database=database, llm=llm) as api:
        await api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "mask"})
        agent = await api.create_agent(model="rec/m")
        thread_id = (await api.request("POST", "/v1/threads", json={
            "compaction": {"strategy": "summarize", "context_window": 60, "threshold": 1, "keep_last": 2}})).json()["id"]
        for i in range(3):
            await _run(api, agent, thread_id, f"point {i}: write to {EMAIL} " + "the parcel went astray " * 3)
        read = (await api.request("GET", f"/v1/threads/{thread_id}")).json()
        summary = "".join(part.get("text", "") for part in read["messages"][0]["parts"])
        assert read["compactions"] >= 1 and summary.startswith(SUMMARY_PREFIX)
        assert "[EMAIL]" in summary  # the model's summary named the address; the thread keeps the placeholder
        stored = await _stored_messages(api, thread_id)
        assert EMAIL not in stored and ANSWER_EMAIL not in stored
        # The run after the compaction was given the summary as stored.
        given = [text for text in seen[-1] if text.startswith(SUMMARY_PREFIX)]
        assert given and "[EMAIL]" in given[0] and ANSWER_EMAIL not in given[0]


async def test_a_hashed_thread_keeps_the_tenants_tokens(any_api: Api) -> None:
    api = any_api
    await api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "hash"})
    agent = await api.create_agent()
    thread_id = (await api.request("POST", "/v1/threads", json={})).json()["id"]
    run = await _run(api, agent, thread_id, f"mail {EMAIL}")
    await _run(api, agent, thread_id, f"again {EMAIL}")
    assert (await api.request("GET", f"/v1/threads/{thread_id}")).status_code == 200
    stored = await _stored_messages(api, thread_id)
    assert EMAIL not in stored
    tokens = re.findall(r"\[EMAIL:[0-9a-f]{12}\]", stored)
    assert len(tokens) >= 2 and len(set(tokens)) == 1  # the same address, the same token in every message
    assert tokens[0] in json.dumps((await api.request("GET", f"/v1/runs/{run['id']}")).json()["input"])


async def test_a_keep_tenants_thread_is_stored_as_given(any_api: Api) -> None:
    api = any_api
    agent = await api.create_agent()
    thread_id = (await api.request("POST", "/v1/threads", json={
        "messages": [{"role": "user", "content": f"I am {EMAIL}"}]})).json()["id"]
    await _run(api, agent, thread_id, f"card {CARD}, IBAN {IBAN}")
    assert (await api.request("GET", f"/v1/threads/{thread_id}")).status_code == 200  # the run's turn joins
    stored = await _stored_messages(api, thread_id)
    for value in (EMAIL, CARD, IBAN):
        assert value in stored, value
    async with api.state.db.session() as session:
        row = await session.get(Thread, uuid.UUID(thread_id))
    assert row is not None and len(row.messages) == 3


async def test_the_export_and_the_report_cover_threads_as_stored(any_api: Api) -> None:
    api = any_api
    await api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "mask"})
    agent = await api.create_agent()
    thread_id = (await api.request("POST", "/v1/threads", json={"title": "export me"})).json()["id"]
    await _run(api, agent, thread_id, f"card {CARD}")
    assert (await api.request("GET", f"/v1/threads/{thread_id}")).status_code == 200  # the run's turn joins
    await api.request("POST", "/v1/threads", tenant="b", json={"title": "not a's"})

    exported = await api.request("GET", "/v1/export")
    assert exported.status_code == 200, exported.text
    threads = exported.json()["threads"]
    assert [t["id"] for t in threads] == [thread_id]  # the tenant's own threads only
    assert "[CARD]" in json.dumps(threads[0]["messages"])
    assert CARD not in exported.text
    report = (await api.request("GET", "/v1/compliance/report")).json()
    assert report["data_held"]["threads"]["count"] == 1
    assert report["data_held"]["threads"]["by_age"]["under_7_days"] == 1


async def test_a_worker_runs_turn_joins_a_masked_thread_once_and_masked(any_api: Api) -> None:
    """A run on a queue worker carries the thread's (masked) history in its input, then its own raw input:
    the turn joins masked, and the history it carried is recognised (not added a second time)."""
    api = any_api
    await api.request("PATCH", "/v1/compliance/policy", json={"pii_mode": "mask"})
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        thread = await threads.create_thread(session, tenant.id, messages=[
            Message("user", [TextPart(f"I am {EMAIL}")]).to_dict(), Message("assistant", [TextPart("noted")]).to_dict()])
        history = list(thread.messages)
        assert EMAIL not in json.dumps(history)
        project = await default_project(session, tenant.id)
        run = await run_store.create_run(session, tenant.id, project_id=project.id, strategy="sequential",
                                         input=[*history, Message("user", [TextPart(f"card {CARD}")]).to_dict()])
        run.status, run.text = "completed", f"Charged {CARD}."
        thread.active_run_id = run.id
    async with api.state.db.writer() as session:
        loaded = await threads.get_thread(session, tenant.id, thread.id)
        await threads.fold_active_run(session, loaded)
        assert [m["parts"][0]["text"] for m in loaded.messages] == ["I am [EMAIL]", "noted", "card [CARD]",
                                                                    "Charged [CARD]."]
