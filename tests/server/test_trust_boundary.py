"""The trust boundary: data a tenant writes is never interpolated and never reaches what only an
operator may configure (local models and paths, Python classes, endpoints, keys, auth headers).

Every field of every stored resource is tried with ``${...}`` and with a local path or id, through
the API (a 422 at write time) and written straight into the database as an older row would be (a 422
when a run is started: the builder checks again). A spy backend shows that nothing of the server's
environment reaches a model, and that refused runs never call one. Operator caps bound what a spec
asks for (steps, loop iterations).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter.store import agents as agent_store
from agentadapter.store import users
from agentadapter.store import workflows as workflow_store
from agentadapter.testing import FunctionBackend, offline_llm
from server.conftest import Api, AppFactory

CANARY = "canary-5f0c1d9e-server-secret"
VAR = "${TRUST_BOUNDARY_CANARY}"
DEFAULT_VAR = "${TRUST_BOUNDARY_CANARY:-fallback}"


@pytest.fixture
def spy() -> FunctionBackend:
    return FunctionBackend(lambda request: "ok", name="spy")


@pytest.fixture(params=["sqlite", "postgres"])
async def trust_api(request: pytest.FixtureRequest, make_api: AppFactory, spy: FunctionBackend,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    monkeypatch.setenv("TRUST_BOUNDARY_CANARY", CANARY)
    async with make_api(database=request.param, llm=offline_llm(backends={"spy": spy})) as ready:
        yield ready


def _seen_by_models(spy: FunctionBackend) -> str:
    return "\n".join(repr(r.messages) + repr(r.tools) + repr(r.metadata) + repr(r.tags) for r in spy.requests)


def _agent(**fields: Any) -> dict[str, Any]:
    return {"name": f"agent-{uuid.uuid4().hex[:8]}", "model": "test/echo", "instructions": "Be brief.", **fields}


# Each: the agent fields that carry ${...} somewhere (the whole body is a valid agent otherwise).
AGENT_PAYLOADS: list[tuple[str, dict[str, Any]]] = [
    ("description", {"description": VAR}),
    ("instructions", {"instructions": f"You are {VAR}."}),
    ("instructions-default", {"instructions": DEFAULT_VAR}),
    ("model", {"model": VAR}),
    ("model-part", {"model": f"test/{VAR}"}),
    ("tools", {"tools": [VAR]}),
    ("handoffs", {"handoffs": [VAR]}),
    ("guardrail-name", {"guardrails": [{"name": VAR, "kind": "input", "when": "text contains 'x'"}]}),
    ("guardrail-when", {"guardrails": [{"name": "g", "kind": "input", "when": f"text contains '{VAR}'"}]}),
    ("guardrail-message", {"guardrails": [{"name": "g", "kind": "output", "when": "text contains 'x'",
                                           "message": VAR}]}),
    ("output-schema-value", {"output_schema": {"type": "object", "properties": {
        "a": {"type": "string", "description": VAR}}}}),
    ("output-schema-key", {"output_schema": {"type": "object", "properties": {VAR: {"type": "string"}}}}),
    ("model-settings-stop", {"model_settings": {"stop": [VAR]}}),
    ("model-settings-metadata", {"model_settings": {"metadata": {"k": VAR}}}),
    ("model-settings-extra-body", {"model_settings": {"extra_body": {"nested": [{"deep": VAR}]}}}),
    ("model-settings-extra-body-key", {"model_settings": {"extra_body": {VAR: 1}}}),
    ("model-settings-tags", {"model_settings": {"tags": {"team": VAR}}}),
    ("metadata-value", {"metadata": {"owner": VAR}}),
    ("metadata-key", {"metadata": {VAR: "x"}}),
    ("metadata-nested", {"metadata": {"a": [{"b": {"c": VAR}}]}}),
]

# Each: agent fields that name what only an operator may (local models, paths, auth headers).
AGENT_OPERATOR_ONLY: list[tuple[str, dict[str, Any], str]] = [
    ("local-model", {"model": "local/tiny"}, "model_not_allowed"),
    ("local-runner-path", {"model": "local/transformers//etc/passwd"}, "model_not_allowed"),
    ("local-mlx-relative", {"model": "local/mlx/../../srv/models/x"}, "model_not_allowed"),
    ("local-vllm", {"model": "local/vllm/tmp/model"}, "model_not_allowed"),
    ("auth-header", {"model_settings": {"extra_headers": {"Authorization": "Bearer x"}}}, "header_not_allowed"),
    ("api-key-header", {"model_settings": {"extra_headers": {"X-Api-Key": "x"}}}, "header_not_allowed"),
    ("host-header", {"model_settings": {"extra_headers": {"host": "internal"}}}, "header_not_allowed"),
]


@pytest.mark.parametrize(("label", "fields"), AGENT_PAYLOADS, ids=[p[0] for p in AGENT_PAYLOADS])
async def test_agent_fields_with_interpolation_are_refused(label: str, fields: dict[str, Any], api: Api) -> None:
    created = await api.request("POST", "/v1/agents", json=_agent(**fields))
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == "interpolation_not_allowed", created.text
    assert (await api.request("GET", "/v1/agents")).json()["data"] == []
    good = await api.create_agent()
    patched = await api.request("PATCH", f"/v1/agents/{good['id']}", json=fields)
    assert patched.status_code == 422 and patched.json()["error"]["code"] == "interpolation_not_allowed"
    assert (await api.request("GET", f"/v1/agents/{good['id']}")).json()["version"] == 1


@pytest.mark.parametrize(("label", "fields", "code"), AGENT_OPERATOR_ONLY, ids=[p[0] for p in AGENT_OPERATOR_ONLY])
async def test_agent_fields_naming_operator_things_are_refused(label: str, fields: dict[str, Any], code: str,
                                                               api: Api) -> None:
    created = await api.request("POST", "/v1/agents", json=_agent(**fields))
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == code


def _set(spec: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(spec)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


LOOP = {"strategy": "loop", "loop": {"generator": "writer", "evaluator": "critic", "max_iterations": 2,
                                     "until": "output contains 'fine'"},
        "agents": [{"name": "writer", "model": "test/echo"}, {"name": "critic", "model": "test/echo"}],
        "input": "Write."}
ADAPTIVE = {"strategy": "adaptive", "start": "triage",
            "routes": [{"from": "triage", "to": "billing", "when": "output contains 'invoice'"}],
            "agents": [{"name": "triage", "model": "test/echo"}, {"name": "billing", "model": "test/echo"}]}
PARALLEL = {"strategy": "parallel", "aggregate": "judge", "judge": "j",
            "agents": [{"name": "a", "model": "test/echo"}, {"name": "j", "model": "test/echo"}]}

# Every string field of the workflow format, with ${...} in it.
WORKFLOW_PAYLOADS: list[tuple[str, dict[str, Any]]] = [
    ("input", _set(LOOP, ("input",), VAR)),
    ("description", _set(LOOP, ("description",), VAR)),
    ("agent-name", _set(ADAPTIVE, ("agents", 1, "name"), VAR)),
    ("agent-model", _set(LOOP, ("agents", 0, "model"), VAR)),
    ("agent-instructions", _set(LOOP, ("agents", 0, "instructions"), DEFAULT_VAR)),
    ("agent-description", _set(LOOP, ("agents", 0, "description"), VAR)),
    ("agent-tools", _set(LOOP, ("agents", 0, "tools"), [VAR])),
    ("agent-capabilities", _set(LOOP, ("agents", 0, "capabilities"), [VAR])),
    ("agent-output-schema", _set(LOOP, ("agents", 0, "output_schema"), {"type": "object", "properties": {
        "a": {"type": "string", "default": VAR}}})),
    ("agent-model-settings", _set(LOOP, ("agents", 0, "model_settings"), {"extra_body": {"x": VAR}})),
    ("agent-ref", _set(LOOP, ("agents", 0), {"name": "writer", "ref": VAR})),
    ("loop-until", _set(LOOP, ("loop", "until"), f"output contains '{VAR}'")),
    ("loop-generator", _set(LOOP, ("loop", "generator"), VAR)),
    ("route-when", _set(ADAPTIVE, ("routes", 0, "when"), f"output contains '{VAR}'")),
    ("route-to", _set(ADAPTIVE, ("routes", 0, "to"), VAR)),
    ("start", _set(ADAPTIVE, ("start",), VAR)),
    ("judge", _set(PARALLEL, ("judge",), VAR)),
    ("unknown-key", {**LOOP, VAR: 1}),
]

WORKFLOW_OPERATOR_ONLY: list[tuple[str, dict[str, Any], str]] = [
    ("type-local", _set(LOOP, ("agents", 0, "type"), "local"), "type_not_allowed"),
    ("type-online", _set(LOOP, ("agents", 0, "type"), "online"), "type_not_allowed"),
    ("class-ref", _set(LOOP, ("agents", 0), {"name": "writer", "ref": "os.path:join"}), "ref_not_allowed"),
    ("local-model", _set(LOOP, ("agents", 0, "model"), "local/transformers//etc/passwd"), "model_not_allowed"),
    ("local-model-route", _set(LOOP, ("agents", 0, "model"), ["test/echo", "local/mlx/tmp/x"]), "model_not_allowed"),
    *[(key, _set(LOOP, ("agents", 0, key), value), "key_not_allowed") for key, value in [
        ("model_path", "/etc/passwd"), ("runner", "transformers"), ("base_url", "http://169.254.169.254/v1"),
        ("api_key", "sk-x"), ("provider", "openai"), ("endpoint", "internal"), ("headers", {"a": "b"}),
        ("backend", {"type": "openai", "base_url": "http://127.0.0.1:1/v1"}), ("backups", ["openai/gpt-4o"]),
        ("params", {"x": 1}), ("device_config", {"device": "cpu"}), ("runner_kwargs", {"x": 1}),
        ("generation_config", {"x": 1}), ("timeout", 1),
    ]],
    ("auth-header", _set(LOOP, ("agents", 0, "model_settings"), {"extra_headers": {"authorization": "x"}}),
     "header_not_allowed"),
]


@pytest.mark.parametrize(("label", "spec"), WORKFLOW_PAYLOADS, ids=[p[0] for p in WORKFLOW_PAYLOADS])
async def test_workflow_fields_with_interpolation_are_refused(label: str, spec: dict[str, Any], api: Api) -> None:
    created = await api.request("POST", "/v1/workflows", json={"name": "flow", "spec": spec})
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == "interpolation_not_allowed", created.text
    import yaml

    as_yaml = await api.request("POST", "/v1/workflows", json={"name": "flow", "yaml": yaml.safe_dump(spec)})
    assert as_yaml.status_code == 422 and as_yaml.json()["error"]["code"] == "interpolation_not_allowed"
    assert (await api.request("GET", "/v1/workflows")).json()["data"] == []


@pytest.mark.parametrize(("label", "spec", "code"), WORKFLOW_OPERATOR_ONLY, ids=[p[0] for p in WORKFLOW_OPERATOR_ONLY])
async def test_workflow_entries_naming_operator_things_are_refused(label: str, spec: dict[str, Any], code: str,
                                                                  api: Api) -> None:
    created = await api.request("POST", "/v1/workflows", json={"name": "flow", "spec": spec})
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == code, created.text


async def test_workflow_description_and_settings_models_are_checked(api: Api) -> None:
    described = await api.request("POST", "/v1/workflows", json={"name": "flow", "description": VAR, "spec": LOOP})
    assert described.status_code == 422 and described.json()["error"]["code"] == "interpolation_not_allowed"
    for body in ({"default_model": "local/transformers//etc"}, {"default_models": {"chat": "local/x"}},
                 {"default_model": VAR}):
        answer = await api.request("PATCH", "/v1/settings", json=body)
        assert answer.status_code == 422, (body, answer.text)
    stored = await api.request("PATCH", "/v1/settings", json={"preferences": {"note": VAR}, "rag_archives": [VAR]})
    assert stored.status_code == 200
    assert stored.json()["preferences"] == {"note": VAR} and stored.json()["rag_archives"] == [VAR]  # kept as text


async def test_gateway_refuses_local_models(api: Api) -> None:
    for model in ("local/tiny", "local/transformers//etc/passwd", "local/mlx/../../x"):
        answer = await api.request("POST", "/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "model_not_allowed"


async def test_tenant_data_reaches_models_verbatim(trust_api: Api, spy: FunctionBackend) -> None:
    """Inputs and the gateway's messages are data: ``${...}`` in them is sent as written."""
    agent = await trust_api.create_agent(model="spy/x")
    run = await trust_api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": f"Say {VAR}"})
    assert run.status_code == 202, run.text
    assert (await trust_api.wait_run(run.json()["id"]))["status"] == "completed"
    chat = await trust_api.request("POST", "/v1/chat/completions", json={
        "model": "spy/x", "messages": [{"role": "system", "content": DEFAULT_VAR}, {"role": "user", "content": VAR}]})
    assert chat.status_code == 200, chat.text
    seen = _seen_by_models(spy)
    assert VAR in seen and DEFAULT_VAR in seen and CANARY not in seen


STORED_AGENT_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("instructions", {"instructions": f"Reveal {VAR}"}),
    ("description", {"description": VAR}),
    ("model", {"model": VAR}),
    ("local-model", {"model": "local/transformers//etc/passwd"}),
    ("model-settings", {"model_settings": {"extra_body": {"x": VAR}}}),
    ("auth-header", {"model_settings": {"extra_headers": {"Authorization": "Bearer stolen"}}}),
    ("output-schema", {"output_schema": {"type": "object", "properties": {"a": {"type": "string", "default": VAR}}}}),
    ("metadata", {"meta": {"k": VAR}}),
    ("denied-tool", {"tools": ["shell"]}),
]


@pytest.mark.parametrize(("label", "fields"), STORED_AGENT_ROWS, ids=[p[0] for p in STORED_AGENT_ROWS])
async def test_stored_rows_are_checked_again_before_they_run(label: str, fields: dict[str, Any], trust_api: Api,
                                                             spy: FunctionBackend) -> None:
    """Rows written before a rule existed (straight into the database here) are refused at build
    time, directly, through a handoff, and through a workflow's ``ref:`` - and no model is called."""
    api = trust_api
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        values = {"model": "spy/x", "instructions": "Be brief.", **fields}
        bad = await agent_store.create_agent(session, tenant.id, name="legacy", **values)
        front = await agent_store.create_agent(session, tenant.id, name="front", model="spy/x",
                                               handoffs=[str(bad.id)])
        flow = await workflow_store.create_workflow(
            session, tenant.id, name="flow", description="", created_by=None,
            spec={"name": "flow", "strategy": "sequential", "agents": [{"name": "step", "ref": "legacy"}]})
    for body in ({"agent_id": str(bad.id), "input": "hi"}, {"agent_id": str(front.id), "input": "hi"},
                 {"workflow_id": str(flow.id), "input": "hi"}):
        answer = await api.request("POST", "/v1/runs", json=body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert error["param"] in ("agent_id", "workflow_id") and "legacy" in error["message"], error
        assert CANARY not in answer.text
    assert (await api.request("GET", "/v1/runs")).json()["data"] == []
    assert spy.requests == []


STORED_WORKFLOW_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("interpolated-instructions", _set(LOOP, ("agents", 0, "instructions"), VAR)),
    ("interpolated-input", _set(LOOP, ("input",), VAR)),
    ("local-type", _set(LOOP, ("agents", 0, "type"), "local")),
    ("class-ref", _set(LOOP, ("agents", 0), {"name": "writer", "ref": "agentadapter.agents.llm_agent:LLMAgent"})),
    ("base-url", _set(LOOP, ("agents", 0, "base_url"), "http://127.0.0.1:9/v1")),
    ("model-path", _set(LOOP, ("agents", 0, "model_path"), "/etc")),
    ("local-model", _set(LOOP, ("agents", 0, "model"), "local/mlx/x")),
]


@pytest.mark.parametrize(("label", "spec"), STORED_WORKFLOW_SPECS, ids=[p[0] for p in STORED_WORKFLOW_SPECS])
async def test_stored_workflows_are_checked_again_before_they_run(label: str, spec: dict[str, Any], api: Api) -> None:
    tenant = await api.tenant()
    async with api.state.db.writer() as session:
        flow = await workflow_store.create_workflow(session, tenant.id, name="flow", description="",
                                                    created_by=None, spec={**spec, "name": "flow"})
    answer = await api.request("POST", f"/v1/workflows/{flow.id}/run", json={"input": "hi"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == "workflow_id"
    assert (await api.request("GET", "/v1/runs")).json()["data"] == []


async def test_stored_default_model_is_checked_again(api: Api) -> None:
    tenant = await api.tenant()
    agent = await api.create_agent(model=None)
    user_id = (await api.request("GET", "/v1/settings")).json()["user_id"]
    async with api.state.db.writer() as session:
        await users.update_settings(session, tenant.id, uuid.UUID(user_id), {"default_model": "local/x"},
                                    replace=False)
    answer = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})
    assert answer.status_code == 422 and answer.json()["error"]["param"] == "settings", answer.text


async def test_request_tags_cannot_move_usage_to_another_tenant(api: Api) -> None:
    victim = await api.tenant("victim")
    agent = await api.create_agent(model_settings={"tags": {"tenant": str(victim.id)}})
    run = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})
    assert (await api.wait_run(run.json()["id"]))["status"] == "completed"
    own = (await api.request("GET", "/v1/usage")).json()
    theirs = (await api.request("GET", "/v1/usage", tenant="victim")).json()
    assert own["total"]["requests"] >= 1, own
    assert theirs["total"]["requests"] == 0, theirs


async def test_operator_caps_bound_what_a_spec_asks(make_api: AppFactory) -> None:
    endless = _set(LOOP, ("loop",), {"generator": "writer", "evaluator": "critic", "max_iterations": 1_000_000,
                                     "until": "output contains 'never-said'"})
    endless["limits"] = {"max_steps": 1_000_000, "timeout_s": 10_000_000}
    endless["retry"] = {"max_retries": 1_000}
    async with make_api(server={"run_max_loop_iterations": 2, "run_max_steps": 50, "run_max_step_retries": 1,
                                "run_max_agents": 3}) as api:
        created = await api.request("POST", "/v1/workflows", json={"name": "endless", "spec": endless})
        assert created.status_code == 201, created.text
        assert created.json()["spec"]["loop"]["max_iterations"] == 1_000_000  # stored as written, run capped
        run = await api.request("POST", f"/v1/workflows/{created.json()['id']}/run",
                                json={"limits": {"max_steps": 1000}})
        assert run.status_code == 202, run.text
        done = await api.wait_run(run.json()["id"])
        assert len(done["agents"]) == 4, done  # two iterations of writer and critic
        crowded = {"strategy": "parallel", "agents": [{"name": f"a{i}", "model": "test/echo"} for i in range(4)]}
        refused = await api.request("POST", "/v1/workflows", json={"name": "crowded", "spec": crowded})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "limit_exceeded"
    async with make_api(server={"run_max_steps": 3}) as api:
        bouncing = {"strategy": "adaptive", "start": "a", "agents": [{"name": "a", "model": "test/echo"},
                                                                     {"name": "b", "model": "test/echo"}],
                    "routes": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
                    "limits": {"max_steps": 1_000_000}}
        created = await api.request("POST", "/v1/workflows", json={"name": "bouncing", "spec": bouncing})
        assert created.status_code == 201, created.text
        run = await api.request("POST", f"/v1/workflows/{created.json()['id']}/run", json={"input": "go"})
        done = await api.wait_run(run.json()["id"])
        assert done["status"] == "failed" and "max_steps" in done["error"]["message"], done
        assert len(done["agents"]) == 3

