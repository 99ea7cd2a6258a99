"""Nested workflows through the API: a stored workflow's ``workflow:`` step runs another stored workflow
of the tenant, whose cost adds up in the parent run; unknown, foreign and cyclic references are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter.testing import offline_llm
from fakes.priced import PRICE_PER_TOKEN, PRICED_MODEL, priced_backend
from server.conftest import Api, AppFactory
from server.test_runs import frames

CALL = 1000 * PRICE_PER_TOKEN  # $0.125: one call of a priced agent (max_tokens 1000)
PRICED = {"model": PRICED_MODEL, "model_settings": {"max_tokens": 1000}}


@pytest.fixture(params=["sqlite", "postgres"])
async def priced_api(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:
    async with make_api(database=request.param, llm=offline_llm(backends={"priced": priced_backend()})) as ready:
        yield ready


async def create(api: Api, name: str, spec: dict[str, Any], tenant: str = "a") -> dict[str, Any]:
    response = await api.request("POST", "/v1/workflows", tenant=tenant, json={"name": name, "spec": spec})
    assert response.status_code == 201, response.text
    return dict(response.json())


INNER = {"strategy": "parallel", "agents": [{"name": "pro", **PRICED}, {"name": "con", **PRICED}]}


async def test_a_nested_workflows_cost_adds_up_in_the_parent_run(priced_api: Api) -> None:
    api = priced_api
    inner = await create(api, "debate", INNER)
    parent = await create(
        api,
        "review",
        {
            "agents": [
                {"name": "brief", **PRICED},
                {"name": "panel", "workflow": inner["id"]},
                {"name": "panel_again", "workflow": "debate"},  # by name works too
            ]
        },
    )
    started = await api.request("POST", "/v1/runs", json={"workflow_id": parent["id"], "input": "Tabs or spaces?"})
    assert started.status_code == 202, started.text
    run = await api.wait_run(started.json()["id"])
    assert run["status"] == "completed", run.get("error")
    steps = {a["name"]: a for a in run["agents"]}
    assert list(steps) == ["brief", "panel", "panel_again"]
    assert steps["brief"]["cost_usd"] == pytest.approx(CALL)
    assert steps["panel"]["cost_usd"] == pytest.approx(2 * CALL)
    assert steps["panel_again"]["cost_usd"] == pytest.approx(2 * CALL)
    assert run["cost_usd"] == pytest.approx(5 * CALL)
    assert run["usage"]["output_tokens"] == 5000

    events = frames((await api.request("GET", f"/v1/runs/{run['id']}/events")).text)
    nested = [f["data"] for f in events if f["event"] == "nested"]
    assert {(e["agent"], e["data"]["workflow"]) for e in nested} == {("panel", "debate"), ("panel_again", "debate")}
    inner_finished = [e["data"]["event"] for e in nested if e["data"]["event"]["type"] == "agent_finished"]
    assert sorted(e["agent"] for e in inner_finished) == ["con", "con", "pro", "pro"]
    assert all(e["data"]["cost_usd"] == pytest.approx(CALL) for e in inner_finished)


async def test_a_step_names_only_the_tenants_own_stored_workflows(api: Api) -> None:
    theirs = await create(api, "theirs", {"agents": [{"name": "x", "model": "test/echo"}]}, tenant="b")
    for ref in ("nowhere", theirs["id"]):
        response = await api.request(
            "POST", "/v1/workflows", json={"name": "mine", "spec": {"agents": [{"name": "step", "workflow": ref}]}}
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert (error["param"], error["code"]) == ("spec.agents[0].workflow", "unknown_workflow")
    response = await api.request(
        "POST",
        "/v1/workflows",
        json={"name": "mixed", "spec": {"agents": [{"name": "step", "workflow": "theirs", "model": "test/echo"}]}},
    )
    assert response.status_code == 422 and "a workflow: step runs another workflow" in response.text


async def test_workflows_cannot_include_each_other(api: Api) -> None:
    first = await create(api, "first", {"agents": [{"name": "x", "model": "test/echo"}]})
    second = await create(api, "second", {"agents": [{"name": "inner", "workflow": "first"}]})
    response = await api.request(
        "PATCH", f"/v1/workflows/{first['id']}", json={"spec": {"agents": [{"name": "back", "workflow": second["id"]}]}}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "workflow_cycle" and error["param"] == "spec.agents[0].workflow"
    assert "first -> second -> first" in error["message"]


async def test_a_run_whose_nested_workflow_was_deleted_is_refused(api: Api) -> None:
    inner = await create(api, "inner", {"agents": [{"name": "x", "model": "test/echo"}]})
    parent = await create(api, "outer", {"agents": [{"name": "step", "workflow": inner["id"]}]})
    assert (await api.request("DELETE", f"/v1/workflows/{inner['id']}")).status_code == 204
    response = await api.request("POST", "/v1/runs", json={"workflow_id": parent["id"], "input": "go"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == "workflow_id" and error["code"] == "unknown_workflow"
    assert f"PATCH /v1/workflows/{parent['id']}" in error["message"]
