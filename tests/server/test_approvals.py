"""Human approval through the API: a run pauses (status ``paused``, a ``run_paused`` event naming the calls),
``POST /v1/runs/{id}/approvals`` decides each call and the run resumes; workflows too; tenants apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter.agents.tools.registry import BUILTIN_TOOLS, ToolRegistry
from server.conftest import Api, AppFactory
from store.databases import unique

refunds: list[int] = []


def registry() -> ToolRegistry:
    # A registry of the test's own: the process-wide one is shared by every test in this worker.
    tools = ToolRegistry(lazy=dict(BUILTIN_TOOLS))

    @tools.tool(needs_approval=True)
    def refund(amount: int) -> str:
        """Refund money to the customer."""
        refunds.append(amount)
        return f"refunded {amount}"

    return tools


@pytest.fixture(params=["sqlite", "postgres"])
async def approving_api(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:
    refunds.clear()
    async with make_api(database=request.param, tools=registry()) as api:
        yield api


async def wait_status(api: Api, run_id: str, wanted: str, tenant: str = "a") -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            run = (await api.request("GET", f"/v1/runs/{run_id}", tenant=tenant)).json()
            if run["status"] == wanted:
                return dict(run)
            assert run["status"] not in {"completed", "failed", "cancelled"} - {wanted}, run
            await asyncio.sleep(0.02)


async def test_a_run_pauses_for_approval_and_completes_once_approved(approving_api: Api) -> None:
    api = approving_api
    agent = await api.create_agent(model="test/tools", tools=["refund"])
    started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "refund my order"})
    run = await wait_status(api, started.json()["id"], "paused")
    assert refunds == []
    [pending] = run["pending_approvals"]
    assert (pending["tool"], pending["agent"]) == ("refund", agent["name"])
    events = (await api.request("GET", f"/v1/runs/{run['id']}/events")).text
    assert "event: run_paused" in events and pending["call_id"] in events and "event: run_finished" not in events
    assert run["id"] in [r["id"] for r in (await api.request("GET", "/v1/runs", params={"status": "paused"})).json()[
        "data"]]

    decided = await api.request("POST", f"/v1/runs/{run['id']}/approvals", json={
        "decisions": [{"call_id": pending["call_id"], "decision": "approve", "reason": "the order was lost"}]})
    assert decided.status_code == 202, decided.text
    done = await api.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert len(refunds) == 1 and done["pending_approvals"] == []
    assert [a["status"] for a in done["agents"]] == ["completed"]  # the paused step was recorded again, once
    again = await api.request("POST", f"/v1/runs/{run['id']}/approvals", json={
        "decisions": [{"call_id": pending["call_id"], "decision": "approve"}]})
    assert again.status_code == 409 and "not paused" in again.text


async def test_a_rejected_call_is_not_run_and_the_run_still_completes(make_api: AppFactory) -> None:
    refunds.clear()
    async with make_api(tools=registry()) as api:
        agent = await api.create_agent(model="test/tools", tools=["refund"])
        started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "refund"})
        run = await wait_status(api, started.json()["id"], "paused")
        call_id = run["pending_approvals"][0]["call_id"]
        decided = await api.request("POST", f"/v1/runs/{run['id']}/approvals", json={
            "decisions": [{"call_id": call_id, "decision": "reject", "reason": "not without a receipt"}]})
        assert decided.status_code == 202
        done = await api.wait_run(run["id"])
        assert done["status"] == "completed" and refunds == []
        events = (await api.request("GET", f"/v1/runs/{run['id']}/events")).text
        assert "not without a receipt" in events  # the run_resumed event keeps the reason


async def test_bad_decisions_are_refused_and_the_run_stays_paused(approving_api: Api) -> None:
    api = approving_api
    agent = await api.create_agent(model="test/tools", tools=["refund"])
    started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "refund"})
    run = await wait_status(api, started.json()["id"], "paused")
    call_id = run["pending_approvals"][0]["call_id"]
    path = f"/v1/runs/{run['id']}/approvals"
    for body, expected in [
        ({"decisions": [{"call_id": "nope", "decision": "approve"}]}, "nope"),
        ({"decisions": [{"call_id": call_id, "decision": "maybe"}]}, "decision"),
        ({"decisions": []}, "decisions"),
        ({"decisions": [{"call_id": call_id, "decision": "approve"}] * 2}, "two decisions"),
    ]:
        response = await api.request("POST", path, json=body)
        assert response.status_code == 422 and expected in response.text, (body, response.text)
    assert (await api.request("POST", path, tenant="b", json={
        "decisions": [{"call_id": call_id, "decision": "approve"}]})).status_code == 404
    assert (await api.request("GET", f"/v1/runs/{run['id']}")).json()["status"] == "paused"

    cancelled = await api.request("POST", f"/v1/runs/{run['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    events = (await api.request("GET", f"/v1/runs/{run['id']}/events")).text
    assert "event: run_finished" in events and refunds == []


async def test_a_run_on_a_thread_waits_for_its_approval_before_the_next_run(approving_api: Api) -> None:
    api = approving_api
    agent = await api.create_agent(model="test/tools", tools=["refund"])
    thread = (await api.request("POST", "/v1/threads", json={})).json()
    body = {"agent_id": agent["id"], "thread_id": thread["id"], "input": "refund"}
    run = await wait_status(api, (await api.request("POST", "/v1/runs", json=body)).json()["id"], "paused")
    busy = await api.request("POST", "/v1/runs", json=body)
    assert busy.status_code == 409 and "thread_busy" in busy.text
    call_id = run["pending_approvals"][0]["call_id"]
    await api.request("POST", f"/v1/runs/{run['id']}/approvals",
                      json={"decisions": [{"call_id": call_id, "decision": "approve"}]})
    done = await api.wait_run(run["id"])
    read = (await api.request("GET", f"/v1/threads/{thread['id']}")).json()
    assert [m["role"] for m in read["messages"]] == ["user", "assistant"]
    assert "".join(p.get("text", "") for p in read["messages"][1]["parts"]) == done["text"]


async def test_a_workflow_step_pauses_and_the_workflow_resumes_after_its_completed_steps(approving_api: Api) -> None:
    api = approving_api
    spec = {"name": unique("wf"), "strategy": "sequential", "agents": [
        {"name": "planner", "model": "test/echo", "instructions": "Plan."},
        {"name": "payer", "model": "test/tools", "instructions": "Pay.", "tools": ["refund"]},
        {"name": "closer", "model": "test/echo", "instructions": "Close."}]}
    created = await api.request("POST", "/v1/workflows", json={"name": spec["name"], "spec": spec})
    assert created.status_code == 201, created.text
    started = await api.request("POST", "/v1/runs", json={"workflow_id": created.json()["id"], "input": "refund 5"})
    run = await wait_status(api, started.json()["id"], "paused")
    assert [(a["name"], a["status"]) for a in run["agents"]] == [("planner", "completed"), ("payer", "running")]
    call_id = run["pending_approvals"][0]["call_id"]
    await api.request("POST", f"/v1/runs/{run['id']}/approvals",
                      json={"decisions": [{"call_id": call_id, "decision": "approve"}]})
    done = await api.wait_run(run["id"])
    assert done["status"] == "completed", done
    assert [(a["name"], a["status"]) for a in done["agents"]] == [
        ("planner", "completed"), ("payer", "completed"), ("closer", "completed")]
    assert len(refunds) == 1
