"""``/v1/agents``: create (checked field by field), read, list, update (versioned), delete, clone."""

from __future__ import annotations

import pytest

from server.conftest import Api


async def test_agent_crud_with_versions_and_clone(any_api: Api) -> None:
    api = any_api
    created = await api.create_agent(name="writer", tools=["web_search"], model_settings={"temperature": 0.2},
                                     guardrails=[{"name": "no-secrets", "kind": "input",
                                                  "when": "text contains 'password'"}],
                                     output_schema={"type": "object", "properties": {"answer": {"type": "string"}}},
                                     metadata={"team": "docs"})
    assert created["object"] == "agent" and created["version"] == 1 and created["metadata"] == {"team": "docs"}
    agent_id = created["id"]

    fetched = await api.request("GET", f"/v1/agents/{agent_id}")
    assert fetched.status_code == 200 and fetched.json() == created

    updated = await api.request("PATCH", f"/v1/agents/{agent_id}", json={"instructions": "Be brief.", "tools": []})
    assert updated.status_code == 200
    assert (updated.json()["version"], updated.json()["tools"]) == (2, [])
    renamed = await api.request("PATCH", f"/v1/agents/{agent_id}", json={"description": "Docs writer"})
    assert renamed.json()["version"] == 2

    versions = (await api.request("GET", f"/v1/agents/{agent_id}/versions")).json()["data"]
    assert [v["version"] for v in versions] == [2, 1] and versions[1]["spec"]["tools"] == ["web_search"]
    first = await api.request("GET", f"/v1/agents/{agent_id}/versions/1")
    assert first.json()["spec"]["instructions"] == "Answer briefly."

    clone = await api.request("POST", f"/v1/agents/{agent_id}/clone")
    assert clone.status_code == 201 and clone.json()["name"] == "writer-copy"
    assert clone.headers["location"] == f"/v1/agents/{clone.json()['id']}"
    named = await api.request("POST", f"/v1/agents/{agent_id}/clone", json={"name": "editor"})
    assert named.json()["name"] == "editor" and named.json()["instructions"] == "Be brief."

    deleted = await api.request("DELETE", f"/v1/agents/{agent_id}")
    assert deleted.status_code == 204
    gone = await api.request("GET", f"/v1/agents/{agent_id}")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "not_found_error"


async def test_agents_are_listed_a_page_at_a_time_with_filters(api: Api) -> None:
    for index in range(5):
        await api.create_agent(name=f"lister-{index}", tools=["http_fetch"] if index == 2 else [])
    first = (await api.request("GET", "/v1/agents", params={"limit": 2})).json()
    assert first["object"] == "list" and first["has_more"] and len(first["data"]) == 2
    rest = (await api.request("GET", "/v1/agents", params={"limit": 10, "cursor": first["next_cursor"]})).json()
    assert [a["name"] for a in first["data"] + rest["data"]] == [f"lister-{i}" for i in (4, 3, 2, 1, 0)]
    assert not rest["has_more"] and rest["next_cursor"] is None
    by_tool = (await api.request("GET", "/v1/agents", params={"tool": "http_fetch"})).json()["data"]
    assert [a["name"] for a in by_tool] == ["lister-2"]
    by_name = (await api.request("GET", "/v1/agents", params={"name": "ister-3"})).json()["data"]
    assert [a["name"] for a in by_name] == ["lister-3"]
    bad = await api.request("GET", "/v1/agents", params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "cursor"
    too_many = await api.request("GET", "/v1/agents", params={"limit": 1000})
    assert too_many.status_code == 422 and too_many.json()["error"]["param"] == "limit"


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"tools": ["web_search", "no_such_tool"]}, "tools[1]", "unknown_tool"),
    ({"tools": ["shell"]}, "tools[0]", "tool_not_allowed"),
    ({"model": "nowhere/model-x"}, "model", "invalid_model"),
    ({"model": "no-slash"}, "model", "invalid_model"),
    ({"output_schema": {"type": "banana"}}, "output_schema.type", "invalid_schema"),
    ({"output_schema": {"type": "string"}}, "output_schema.type", "invalid_schema"),
    ({"output_schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}},
     "output_schema.properties.a.$ref", "invalid_schema"),
    ({"guardrails": [{"name": "g", "kind": "input", "when": "__import__('os')"}]}, "guardrails[0].when",
     "invalid_condition"),
    ({"guardrails": [{"name": "g", "kind": "input", "when": "text contains 'a'"},
                     {"name": "g", "kind": "input", "when": "text contains 'b'"}]}, "guardrails[1].name",
     "invalid_value"),
    ({"handoffs": ["nobody"]}, "handoffs[0]", "unknown_agent"),
    ({"model_settings": {"temprature": 1}}, "model_settings", "invalid_model_settings"),
    ({"name": "has spaces"}, "name", "validation_error"),
    ({"max_turns": 0}, "max_turns", "validation_error"),
    ({"colour": "blue"}, "colour", "validation_error"),
])
async def test_an_invalid_agent_is_refused_naming_the_field(api: Api, body: dict, param: str, code: str) -> None:
    response = await api.request("POST", "/v1/agents", json={"name": "bad", "model": "test/echo", **body})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert param.split("[")[0].split(".")[0] in error["message"]


async def test_handoffs_are_given_by_name_or_id_and_stored_as_ids(api: Api) -> None:
    billing = await api.create_agent(name="billing")
    support = await api.create_agent(name="support")
    triage = await api.create_agent(name="triage", handoffs=["billing", support["id"]])
    assert triage["handoffs"] == [billing["id"], support["id"]]
    itself = await api.request("PATCH", f"/v1/agents/{triage['id']}", json={"handoffs": ["triage"]})
    assert itself.status_code == 422 and itself.json()["error"]["param"] == "handoffs[0]"
    renamed = await api.request("PATCH", f"/v1/agents/{billing['id']}", json={"name": "invoices"})
    assert renamed.status_code == 200
    assert (await api.request("GET", f"/v1/agents/{triage['id']}")).json()["handoffs"][0] == billing["id"]


async def test_names_are_unique_per_tenant(api: Api) -> None:
    await api.create_agent(name="unique-one")
    again = await api.request("POST", "/v1/agents", json={"name": "unique-one"})
    assert again.status_code == 409
    assert (again.json()["error"]["type"], again.json()["error"]["param"]) == ("conflict_error", "name")
    assert (await api.request("POST", "/v1/agents", tenant="b", json={"name": "unique-one"})).status_code == 201


async def test_patch_with_null_clears_only_nullable_fields(api: Api) -> None:
    agent = await api.create_agent(max_turns=3, tools=["web_search"])
    response = await api.request("PATCH", f"/v1/agents/{agent['id']}",
                                 json={"model": None, "max_turns": None, "tools": None})
    body = response.json()
    assert (body["model"], body["max_turns"], body["tools"]) == (None, None, ["web_search"])


async def test_an_agent_definition_reports_every_problem_at_once(api: Api) -> None:
    response = await api.request("POST", "/v1/agents", json={
        "name": "many-problems", "model": "nope/x", "tools": ["no_such_tool", "another_missing"],
        "handoffs": ["ghost"],
        "guardrails": [{"kind": "input", "name": "g", "when": "output contains"}],
    })
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    params = [item["param"] for item in error["details"]["errors"]]
    assert params[0] == error["param"] == "model"
    assert {"model", "tools[0]", "tools[1]", "guardrails[0].when", "handoffs[0]"} <= set(params)
    assert "more problem(s), listed in details.errors" in error["message"]
    codes = {item["param"]: item["code"] for item in error["details"]["errors"]}
    assert codes["tools[0]"] == "unknown_tool" and codes["handoffs[0]"] == "unknown_agent"


async def test_one_problem_is_reported_as_it_is(api: Api) -> None:
    response = await api.request("POST", "/v1/agents", json={"name": "one", "model": "test/echo",
                                                             "tools": ["no_such_tool"]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "tools[0]" and error["code"] == "unknown_tool" and "more problem" not in error["message"]
