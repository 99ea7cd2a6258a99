"""``/v1/threads``: conversations that runs continue, compacted near the model's context window, per tenant."""

from __future__ import annotations

from typing import Any

import pytest

from agentadapter.agents.sessions import SUMMARY_PREFIX
from agentadapter.llm.messages import Request
from agentadapter.testing import FunctionBackend, offline_llm
from server.conftest import Api, AppFactory


def _text(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"])


async def _run(api: Api, agent: dict[str, Any], thread_id: str, text: str, tenant: str = "a") -> dict[str, Any]:
    response = await api.request("POST", "/v1/runs", tenant=tenant,
                                 json={"agent_id": agent["id"], "thread_id": thread_id, "input": text})
    assert response.status_code == 202, response.text
    done = await api.wait_run(response.json()["id"], tenant=tenant)
    assert done["status"] == "completed", done
    return done


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_thread_continues_over_three_runs_and_is_trimmed_on_a_tiny_window(make_api: AppFactory,
                                                                                   database: str) -> None:
    seen: list[list[str]] = []

    def answer(request: Request) -> str:
        seen.append([m.text for m in request.messages if m.role != "system"])
        return f"answer {len(seen)}: " + "we will look into it " * 4

    llm = offline_llm(backends={"rec": FunctionBackend(answer, name="rec")})
    async with make_api(database=database, llm=llm) as api:
        agent = await api.create_agent(model="rec/m")
        created = await api.request("POST", "/v1/threads", json={
            "title": "support",
            "compaction": {"strategy": "trim", "context_window": 90, "threshold": 1, "keep_last": 2}})
        assert created.status_code == 201, created.text
        thread = created.json()
        assert created.headers["Location"] == f"/v1/threads/{thread['id']}"
        assert (thread["messages"], thread["compactions"], thread["compaction"]["strategy"]) == ([], 0, "trim")

        questions = [f"question {i}: " + "tell me more about the order " * 4 for i in range(3)]
        runs = [await _run(api, agent, thread["id"], q) for q in questions]
        assert runs[1]["input"] == questions[1]  # the run keeps its own input; the thread gives it the history

        assert seen[0] == [questions[0]]
        assert seen[1][0] == questions[0] and seen[1][-1] == questions[1]  # the first exchange came first
        # By the third run the history no longer fit the window: the oldest exchange was trimmed.
        assert questions[0] not in seen[2] and seen[2][-3:] == [questions[1], runs[1]["text"], questions[2]]

        read = (await api.request("GET", f"/v1/threads/{thread['id']}")).json()
        texts = [_text(m) for m in read["messages"]]
        assert texts[-2:] == [questions[2], runs[2]["text"]]
        assert read["compactions"] >= 1 and questions[0] not in texts
        assert read["active_run_id"] is None and read["active_run_status"] is None


async def test_summarize_puts_a_summary_first(api: Api) -> None:
    agent = await api.create_agent()
    thread = (await api.request("POST", "/v1/threads", json={
        "compaction": {"strategy": "summarize", "context_window": 60, "threshold": 1, "keep_last": 2}})).json()
    for i in range(3):
        await _run(api, agent, thread["id"], f"point {i}: " + "the parcel went to the wrong city " * 3)
    read = (await api.request("GET", f"/v1/threads/{thread['id']}")).json()
    text = _text(read["messages"][0])
    assert read["compactions"] >= 1 and text.startswith(SUMMARY_PREFIX)


async def test_a_thread_starts_with_given_messages_and_can_be_listed_and_deleted(api: Api) -> None:
    agent = await api.create_agent()
    thread = (await api.request("POST", "/v1/threads", json={
        "agent_id": agent["id"], "messages": [{"role": "user", "content": "My name is Ada."},
                                              {"role": "assistant", "content": "Hello Ada."}]})).json()
    assert len(thread["messages"]) == 2 and thread["agent_id"] == agent["id"]
    # A run names only the thread: the thread's agent answers, after the messages it started with.
    started = await api.request("POST", "/v1/runs", json={"thread_id": thread["id"], "input": "What is my name?"})
    assert started.status_code == 202, started.text
    assert (await api.wait_run(started.json()["id"]))["agent_id"] == agent["id"]
    assert len((await api.request("GET", f"/v1/threads/{thread['id']}")).json()["messages"]) == 4
    agentless = (await api.request("POST", "/v1/threads", json={})).json()
    missing = await api.request("POST", "/v1/runs", json={"thread_id": agentless["id"], "input": "hi"})
    assert missing.status_code == 422 and "agent_id" in missing.text
    listed = (await api.request("GET", "/v1/threads")).json()["data"]
    assert thread["id"] in [t["id"] for t in listed]
    assert (await api.request("DELETE", f"/v1/threads/{thread['id']}")).status_code == 204
    assert (await api.request("GET", f"/v1/threads/{thread['id']}")).status_code == 404


async def test_another_tenants_thread_is_not_found(any_api: Api) -> None:
    api = any_api
    thread = (await api.request("POST", "/v1/threads", json={})).json()
    other_agent = await api.create_agent(tenant="b")
    assert (await api.request("GET", f"/v1/threads/{thread['id']}", tenant="b")).status_code == 404
    assert (await api.request("DELETE", f"/v1/threads/{thread['id']}", tenant="b")).status_code == 404
    response = await api.request("POST", "/v1/runs", tenant="b",
                                 json={"agent_id": other_agent["id"], "thread_id": thread["id"], "input": "hi"})
    assert response.status_code == 404, response.text
    assert thread["id"] not in [t["id"] for t in (await api.request("GET", "/v1/threads", tenant="b")).json()["data"]]


async def test_bad_thread_bodies_are_refused_naming_the_field(api: Api) -> None:
    cases = [
        ({"compaction": {"strategy": "forget"}}, "strategy"),
        ({"compaction": {"threshold": 2}}, "threshold"),
        ({"compaction": {"context_window": 0}}, "context_window"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
        ({"agent_id": "00000000-0000-0000-0000-000000000000"}, "agent_id"),
        ({"colour": "blue"}, "colour"),
    ]
    for body, field in cases:
        response = await api.request("POST", "/v1/threads", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in response.text, (body, response.text)
    workflow_run = await api.request("POST", "/v1/runs", json={
        "workflow_id": "00000000-0000-0000-0000-000000000000", "thread_id": "00000000-0000-0000-0000-000000000000"})
    assert workflow_run.status_code == 422 and "thread_id" in workflow_run.text
