"""Tenant isolation on every resource route: another tenant's agent, run or workflow is a 404 - the same
answer as an id that does not exist - and never appears in a list. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from server.conftest import Api

# (method, path template, body): every route that takes a resource id.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/agents/{agent}", None),
    ("PATCH", "/v1/agents/{agent}", {"instructions": "mine now"}),
    ("DELETE", "/v1/agents/{agent}", None),
    ("POST", "/v1/agents/{agent}/clone", {}),
    ("GET", "/v1/agents/{agent}/versions", None),
    ("GET", "/v1/agents/{agent}/versions/1", None),
    ("GET", "/v1/runs/{run}", None),
    ("POST", "/v1/runs/{run}/cancel", None),
    ("GET", "/v1/runs/{run}/messages", None),
    ("GET", "/v1/runs/{run}/events", None),
    ("POST", "/v1/runs", {"agent_id": "{agent}", "input": "steal"}),
    ("POST", "/v1/runs", {"workflow_id": "{workflow}", "input": "steal"}),
    ("GET", "/v1/workflows/{workflow}", None),
    ("PATCH", "/v1/workflows/{workflow}", {"description": "mine now"}),
    ("PUT", "/v1/workflows/{workflow}", {"name": "mine", "spec": {"agents": [{"name": "a", "model": "test/echo"}]}}),
    ("DELETE", "/v1/workflows/{workflow}", None),
    ("POST", "/v1/workflows/{workflow}/run", {"input": "steal"}),
]


@pytest.fixture
async def owned(any_api: Api) -> dict[str, str]:
    """Tenant a's agent, finished run and workflow."""
    agent = await any_api.create_agent(tenant="a", name="private-agent")
    run = (await any_api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "secret"})).json()
    await any_api.wait_run(run["id"])
    workflow = (await any_api.request("POST", "/v1/workflows", json={
        "name": "private-flow", "spec": {"agents": [{"name": "a", "model": "test/echo"}]}})).json()
    return {"agent": agent["id"], "run": run["id"], "workflow": workflow["id"]}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p} {sorted(b or {})}" for m, p, b in ROUTES])
async def test_another_tenants_resource_is_not_found(any_api: Api, owned: dict[str, str], method: str, path: str,
                                                     body: dict[str, Any] | None) -> None:
    kwargs = {"json": _fill(body, owned)} if body is not None else {}
    response = await any_api.request(method, _fill(path, owned), tenant="b", **kwargs)
    assert response.status_code == 404, (response.status_code, response.text)
    assert response.json()["error"]["type"] == "not_found_error"
    # ... and the owner still has it, unchanged.
    assert (await any_api.request("GET", f"/v1/agents/{owned['agent']}")).json()["instructions"] == "Answer briefly."
    assert (await any_api.request("GET", f"/v1/workflows/{owned['workflow']}")).json()["name"] == "private-flow"


async def test_lists_show_only_the_callers_tenant(any_api: Api, owned: dict[str, str]) -> None:
    for path in ("/v1/agents", "/v1/runs", "/v1/workflows", "/v1/audit-logs"):
        theirs = (await any_api.request("GET", path, tenant="b")).json()["data"]
        ours = (await any_api.request("GET", path, tenant="a")).json()["data"]
        assert theirs == [] and ours, path
    mine = (await any_api.request("GET", "/v1/runs", tenant="b", params={"agent_id": owned["agent"]})).json()
    assert mine["data"] == []


async def test_handoffs_and_workflow_refs_cannot_name_another_tenants_agent(any_api: Api,
                                                                           owned: dict[str, str]) -> None:
    handoff = await any_api.request("POST", "/v1/agents", tenant="b",
                                    json={"name": "thief", "handoffs": [owned["agent"]]})
    assert handoff.status_code == 422 and handoff.json()["error"]["code"] == "unknown_agent"
    ref = await any_api.request("POST", "/v1/workflows", tenant="b",
                                json={"name": "thief", "spec": {"agents": [{"ref": "private-agent"}]}})
    assert ref.status_code == 422 and ref.json()["error"]["code"] == "unknown_agent"
