"""``/v1/workflows``: stored workflows (JSON or YAML), checked like workflow files, CRUD, and runs.

What a workflow file may do but an API caller may not is refused: ``${VAR}`` (it would read the
server's environment), ``ref: module:Class`` (it would import code), endpoint and key settings.
"""

from __future__ import annotations

import pytest

from server.conftest import Api

SEQUENTIAL = {
    "strategy": "sequential",
    "agents": [
        {"name": "researcher", "model": "test/echo", "instructions": "Find the facts."},
        {"name": "writer", "model": "test/echo", "instructions": "Write it up."},
    ],
    "input": "Why do we have tides?",
}

PARALLEL_YAML = """
strategy: parallel
aggregate: concat
agents:
  - {name: optimist, model: test/echo}
  - {name: pessimist, model: test/echo}
"""


async def test_workflow_crud_and_run(any_api: Api) -> None:
    api = any_api
    created = await api.request("POST", "/v1/workflows", json={"name": "research", "spec": SEQUENTIAL})
    assert created.status_code == 201, created.text
    flow = created.json()
    assert (flow["object"], flow["version"], flow["spec"]["name"]) == ("workflow", 1, "research")

    run = await api.request("POST", f"/v1/workflows/{flow['id']}/run")
    assert run.status_code == 202
    done = await api.wait_run(run.json()["id"])
    assert (done["status"], done["workflow_name"], done["input"]) == ("completed", "research", SEQUENTIAL["input"])
    assert [a["name"] for a in done["agents"]] == ["researcher", "writer"]

    via_runs = await api.request("POST", "/v1/runs", json={"workflow_id": flow["id"], "input": "Other task"})
    assert (await api.wait_run(via_runs.json()["id"]))["input"] == "Other task"

    patched = await api.request("PATCH", f"/v1/workflows/{flow['id']}", json={"yaml": PARALLEL_YAML})
    assert patched.status_code == 200 and (patched.json()["version"], patched.json()["spec"]["strategy"]) == \
        (2, "parallel")
    renamed = await api.request("PATCH", f"/v1/workflows/{flow['id']}", json={"name": "debate"})
    assert renamed.json()["name"] == "debate" and renamed.json()["spec"]["name"] == "debate"
    replaced = await api.request("PUT", f"/v1/workflows/{flow['id']}",
                                 json={"name": "research", "description": "again", "spec": SEQUENTIAL})
    assert replaced.json()["description"] == "again" and replaced.json()["spec"]["strategy"] == "sequential"
    listed = (await api.request("GET", "/v1/workflows")).json()["data"]
    assert [w["id"] for w in listed] == [flow["id"]]
    assert (await api.request("DELETE", f"/v1/workflows/{flow['id']}")).status_code == 204
    assert (await api.request("GET", f"/v1/workflows/{flow['id']}")).status_code == 404


async def test_a_workflow_without_input_needs_one_to_run(api: Api) -> None:
    flow = (await api.request("POST", "/v1/workflows", json={"name": "debate", "yaml": PARALLEL_YAML})).json()
    refused = await api.request("POST", f"/v1/workflows/{flow['id']}/run", json={})
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "input"
    run = await api.request("POST", f"/v1/workflows/{flow['id']}/run", json={"input": "Is it sunny?"})
    done = await api.wait_run(run.json()["id"])
    assert done["status"] == "completed" and done["strategy"] == "parallel/concat"


async def test_stored_agents_are_referenced_by_name_with_their_guardrails(api: Api) -> None:
    await api.create_agent(name="careful", guardrails=[{"name": "no-secrets", "kind": "input",
                                                        "when": "text contains 'secret'"}])
    spec = {"agents": [{"ref": "careful", "timeout_s": 30}]}
    flow = (await api.request("POST", "/v1/workflows", json={"name": "guarded", "spec": spec})).json()
    assert flow["spec"]["agents"] == [{"ref": "careful", "timeout_s": 30}]
    ok = await api.request("POST", f"/v1/workflows/{flow['id']}/run", json={"input": "hello"})
    assert (await api.wait_run(ok.json()["id"]))["status"] == "completed"
    tripped = await api.request("POST", f"/v1/workflows/{flow['id']}/run", json={"input": "a secret"})
    assert (await api.wait_run(tripped.json()["id"]))["status"] == "failed"


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"spec": {"agents": [{"name": "a", "model": "test/echo", "instructions": "${AGENTADAPTER_SECRET_KEY}"}]}},
     "spec.agents[0].instructions", "interpolation_not_allowed"),
    ({"spec": {"agents": [{"name": "a", "ref": "os.path:join"}]}}, "spec.agents[0].ref", "ref_not_allowed"),
    ({"spec": {"agents": [{"name": "a", "ref": "nobody"}]}}, "spec.agents[0].ref", "unknown_agent"),
    ({"spec": {"agents": [{"name": "a", "model": "test/echo", "base_url": "http://169.254.169.254"}]}},
     "spec.agents[0].base_url", "key_not_allowed"),
    ({"spec": {"agents": [{"name": "a", "model": "test/echo", "tools": ["shell"]}]}},
     "spec.agents[0].tools[0]", "tool_not_allowed"),
    ({"spec": {"agents": [{"name": "a", "model": "nowhere/x"}]}}, "spec.agents[0].model", "invalid_model"),
    ({"spec": {"strategy": "loop", "agents": [{"name": "a", "model": "test/echo"}]}}, "spec.strategy",
     "invalid_workflow"),
    ({"spec": {"agents": [{"name": "a", "model": "test/echo"}], "colour": "red"}}, "spec.colour",
     "invalid_workflow"),
    ({"yaml": "agents: [unclosed"}, "yaml", "invalid_yaml"),
    ({"yaml": "- just\n- a list\n"}, "yaml", "invalid_workflow"),
    ({}, "spec", "missing_spec"),
    ({"spec": {"agents": []}, "yaml": "agents: []"}, "spec", "two_forms"),
])
async def test_an_unsafe_or_invalid_workflow_is_refused_naming_the_field(
    api: Api, body: dict, param: str, code: str,
) -> None:
    response = await api.request("POST", "/v1/workflows", json={"name": "bad", **body})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error


async def test_workflow_names_are_unique_per_tenant(api: Api) -> None:
    body = {"name": "same", "spec": SEQUENTIAL}
    assert (await api.request("POST", "/v1/workflows", json=body)).status_code == 201
    assert (await api.request("POST", "/v1/workflows", json=body)).status_code == 409
    assert (await api.request("PUT", "/v1/workflows/00000000-0000-0000-0000-000000000000",
                              json={"name": "x"})).status_code == 422
