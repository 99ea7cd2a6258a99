"""``/v1/runs``: start (202, executed in the background), read, list, cancel, messages, and SSE events -
live (tokens included), resumed from ``Last-Event-ID``, and replayed from the database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter.llm.messages import Request
from agentadapter.orchestrator import RunEvent
from agentadapter.protocol.envelope import Envelope, MessageType
from agentadapter.store import runs as run_store
from agentadapter.store import tenants
from agentadapter.testing import FunctionBackend, offline_llm
from server.conftest import Api, AppFactory


def frames(text: str) -> list[dict[str, Any]]:
    """The SSE frames of a stream: ``{"id", "event", "data"}`` each (comments and ``retry`` skipped)."""
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            if key in ("id", "event", "data"):
                fields[key] = json.loads(value) if key == "data" else value
        if "event" in fields:
            found.append(fields)
    return found


class Gate:
    """A model (``gate/slow``) that answers only once the test opens the gate."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.started = asyncio.Event()

    async def answer(self, request: Request) -> str:
        self.started.set()
        await self.opened.wait()
        return "slow answer"


@pytest.fixture
async def gated(make_api: AppFactory) -> AsyncIterator[tuple[Api, Gate]]:
    gate = Gate()
    llm = offline_llm(backends={"gate": FunctionBackend(gate.answer, name="gate")})
    async with make_api(llm=llm) as api:
        yield api, gate


async def test_a_run_is_accepted_then_executed_in_the_background(any_api: Api) -> None:
    api = any_api
    agent = await api.create_agent()
    response = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Hello there"})
    assert response.status_code == 202
    run = response.json()
    assert (run["object"], run["status"], run["agent_version"]) == ("run", "queued", 1)
    assert response.headers["location"] == f"/v1/runs/{run['id']}"

    done = await api.wait_run(run["id"])
    assert (done["status"], done["output"], done["error"]) == ("completed", "Hello there", None)
    assert done["usage"]["total_tokens"] > 0 and done["started_at"] and done["finished_at"]
    assert [(a["name"], a["status"]) for a in done["agents"]] == [(agent["name"], "completed")]
    assert done["last_event_id"] >= 4

    listed = (await api.request("GET", "/v1/runs", params={"status": "completed"})).json()["data"]
    assert run["id"] in [r["id"] for r in listed] and "agents" not in [k for r in listed for k, v in r.items() if v]
    by_agent = (await api.request("GET", "/v1/runs", params={"agent_id": agent["id"]})).json()["data"]
    assert [r["id"] for r in by_agent] == [run["id"]]

    events = await api.request("GET", f"/v1/runs/{run['id']}/events")
    assert events.status_code == 200 and events.headers["content-type"].startswith("text/event-stream")
    got = frames(events.text)
    assert got[0]["event"] == "run_started" and got[-1]["event"] == "run_finished"
    assert got[-1]["data"]["data"]["status"] == "completed"
    assert [int(f["id"]) for f in got] == sorted(int(f["id"]) for f in got)


async def test_events_stream_live_with_tokens_and_resume_after_last_event_id(gated: tuple[Api, Gate]) -> None:
    api, gate = gated
    agent = await api.create_agent(model="gate/slow")
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Wait"})).json()
    stream = asyncio.create_task(api.request("GET", f"/v1/runs/{run['id']}/events"))
    await asyncio.wait_for(gate.started.wait(), 5)
    gate.opened.set()
    live = frames((await asyncio.wait_for(stream, 10)).text)
    kinds = [f["event"] for f in live]
    assert kinds[:2] == ["run_started", "agent_started"] and kinds[-1] == "run_finished"
    assert "token" in kinds
    assert "".join(f["data"]["data"]["text"] for f in live if f["event"] == "token") == "slow answer"

    middle = int(live[1]["id"])
    resumed = frames((await api.request("GET", f"/v1/runs/{run['id']}/events",
                                        headers={"Last-Event-ID": str(middle)})).text)
    assert resumed and int(resumed[0]["id"]) > middle and resumed[-1]["event"] == "run_finished"
    assert "token" not in [f["event"] for f in resumed]  # tokens are live only
    after = frames((await api.request("GET", f"/v1/runs/{run['id']}/events", params={"after": middle})).text)
    assert [f["id"] for f in after] == [f["id"] for f in resumed]
    bad = await api.request("GET", f"/v1/runs/{run['id']}/events", headers={"Last-Event-ID": "seven"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "Last-Event-ID"


async def test_events_of_a_forgotten_run_are_replayed_from_the_database(make_api: AppFactory) -> None:
    async with make_api(server={"recent_runs": 0}) as api:
        agent = await api.create_agent()
        run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Replay me"})).json()
        await api.wait_run(run["id"])
        await asyncio.sleep(0.05)
        assert api.state.executor.events(uuid.UUID(run["id"])) is None
        replay = frames((await api.request("GET", f"/v1/runs/{run['id']}/events")).text)
        assert replay[0]["event"] == "run_started" and replay[-1]["event"] == "run_finished"
        assert "token" not in [f["event"] for f in replay]
        tail = frames((await api.request("GET", f"/v1/runs/{run['id']}/events",
                                         headers={"Last-Event-ID": replay[-2]["id"]})).text)
        assert [f["event"] for f in tail] == ["run_finished"]


async def test_events_of_a_run_executing_elsewhere_are_followed_in_the_database(api: Api) -> None:
    tenant = await api.tenant()
    db = api.state.db
    async with db.writer() as session:
        project = await tenants.default_project(session, tenant.id)
        run = await run_store.create_run(session, tenant.id, input="x", project_id=project.id)
    stream = asyncio.create_task(api.request("GET", f"/v1/runs/{run.id}/events"))
    for seq, kind in enumerate(("run_started", "agent_started", "agent_finished", "run_finished"), start=1):
        await asyncio.sleep(0.06)
        async with db.writer() as session:
            await run_store.record_event(session, tenant.id, RunEvent(seq, kind, str(run.id), None, 1.0, {"n": seq}))
    got = frames((await asyncio.wait_for(stream, 10)).text)
    assert [f["event"] for f in got] == ["run_started", "agent_started", "agent_finished", "run_finished"]


async def test_a_running_run_is_cancelled_and_an_ended_one_cannot_be(gated: tuple[Api, Gate]) -> None:
    api, gate = gated
    agent = await api.create_agent(model="gate/slow")
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Wait"})).json()
    await asyncio.wait_for(gate.started.wait(), 5)
    cancel = await api.request("POST", f"/v1/runs/{run['id']}/cancel")
    assert cancel.status_code == 202
    done = await api.wait_run(run["id"])
    assert done["status"] == "cancelled" and "cancelled through the API" in done["error"]["message"]
    again = await api.request("POST", f"/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"


async def test_a_run_no_process_executes_is_closed_when_cancelled(api: Api) -> None:
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        project = await tenants.default_project(session, tenant.id)
        orphan = await run_store.create_run(session, tenant.id, input="x", project_id=project.id)
    response = await api.request("POST", f"/v1/runs/{orphan.id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"


async def test_messages_between_agents_are_listed(api: Api) -> None:
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        project = await tenants.default_project(session, tenant.id)
        run = await run_store.create_run(session, tenant.id, input="x", project_id=project.id)
        for index in range(3):
            await run_store.record_message(session, tenant.id, str(run.id), Envelope(
                type=MessageType.MESSAGE, sender="researcher", payload={"n": index}, recipient="writer",
                created_at=1_800_000_000.0 + index))
    page = (await api.request("GET", f"/v1/runs/{run.id}/messages", params={"limit": 2})).json()
    assert [m["payload"] for m in page["data"]] == [{"n": 0}, {"n": 1}] and page["has_more"]
    rest = (await api.request("GET", f"/v1/runs/{run.id}/messages", params={"offset": 2})).json()
    assert [(m["sender"], m["recipient"], m["payload"]) for m in rest["data"]] == [("researcher", "writer", {"n": 2})]


async def test_a_guardrail_stops_the_run(api: Api) -> None:
    agent = await api.create_agent(guardrails=[{"name": "no-passwords", "kind": "input",
                                                "when": "text contains 'password'", "message": "no secrets"}])
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"],
                                                       "input": "my password is hunter2"})).json()
    done = await api.wait_run(run["id"])
    assert done["status"] == "failed" and done["agents"][0]["error"]["type"] == "GuardrailTripped"
    assert "no-passwords" in done["agents"][0]["error"]["message"]
    fine = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hello"})).json()
    assert (await api.wait_run(fine["id"]))["status"] == "completed"


async def test_an_output_schema_gives_a_typed_output(api: Api) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "people": {"type": "integer"}},
              "required": ["city", "people"]}
    agent = await api.create_agent(output_schema=schema)
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Largest city?"})).json()
    done = await api.wait_run(run["id"])
    assert done["status"] == "completed" and set(done["output"]) == {"city", "people"}


async def test_an_agent_without_a_model_uses_the_users_default_model(api: Api) -> None:
    agent = await api.create_agent(model=None)
    refused = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_model"
    await api.request("PATCH", "/v1/settings", json={"default_model": "test/echo"})
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})).json()
    assert (await api.wait_run(run["id"]))["status"] == "completed"


async def test_handoff_targets_are_built_with_the_agent_and_a_broken_one_is_reported(api: Api) -> None:
    billing = await api.create_agent(name="billing")
    triage = await api.create_agent(name="triage", handoffs=["billing"])
    run = (await api.request("POST", "/v1/runs", json={"agent_id": triage["id"], "input": "invoice"})).json()
    assert (await api.wait_run(run["id"]))["status"] == "completed"
    await api.request("DELETE", f"/v1/agents/{billing['id']}")
    broken = await api.request("POST", "/v1/runs", json={"agent_id": triage["id"], "input": "invoice"})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "broken_handoff"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "agent_id"),
    ({"agent_id": str(uuid.uuid4()), "workflow_id": str(uuid.uuid4()), "input": "x"}, "agent_id"),
    ({"agent_id": "not-a-uuid", "input": "x"}, "agent_id"),
    ({"agent_id": str(uuid.uuid4())}, "input"),
    ({"agent_id": str(uuid.uuid4()), "input": "x", "limits": {"max_steps": 0}}, "limits.max_steps"),
])
async def test_a_bad_run_request_names_the_field(api: Api, body: dict[str, Any], param: str) -> None:
    response = await api.request("POST", "/v1/runs", json=body)
    assert response.status_code == 422 and response.json()["error"]["param"] == param


async def test_limits_and_projects_apply(api: Api) -> None:
    agent = await api.create_agent()
    other = await api.tenant("b")
    async with api.state.db.session() as session:
        foreign_project = await tenants.default_project(session, other.id)
    foreign = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "x",
                                                          "project_id": str(foreign_project.id)})
    assert foreign.status_code == 404
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "x",
                                                       "limits": {"max_steps": 1, "timeout_s": 30}})).json()
    assert (await api.wait_run(run["id"]))["status"] == "completed"
    unknown = await api.request("GET", f"/v1/runs/{uuid.uuid4()}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "run_not_found"
