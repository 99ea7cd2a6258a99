"""Every operation of the OpenAPI document, fuzzed by schemathesis on SQLite and on PostgreSQL.

The app is the one ``make_api`` starts (its lifespan on the test's event loop, the offline LLM: only
``test/...`` models answer). Schemathesis reads the app's own ``/openapi.json`` and generates valid
and invalid requests for each operation (out-of-range integers, NUL bytes and lone surrogates in
strings, wrong types, missing fields); each goes through the app with a tenant admin key, and path
ids are sometimes those of seeded resources, so that the routes past the 404 are reached too. A
request fails the test when the answer is a 5xx, or when its status or body is not what the
document says it can be (status code, content type and response schema conformance).

Hypothesis runs in a worker thread (it is synchronous); each request is handed to the test's loop,
where the app and its database connections live. ``bench/fuzz_api.py`` runs the same driver for
10,000+ cases.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from server.conftest import Api, AppFactory

__all__ = ["FuzzReport", "fuzz_api", "seed"]

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]
"""What a response must pass: no 5xx; a status, content type and body the document declares."""

SERVER_SETTINGS = {"rate_limit_key_rpm": 0, "rate_limit_tenant_rpm": 0}
"""No rate limits: the fuzzer sends far more than a tenant would, and a 429 tells nothing about the route."""


@dataclass
class Finding:
    operation: str
    status: int
    problem: str
    request: str


@dataclass
class OperationReport:
    label: str
    cases: int = 0
    server_errors: int = 0
    violations: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass
class FuzzReport:
    operations: list[OperationReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def cases(self) -> int:
        return sum(op.cases for op in self.operations)

    @property
    def server_errors(self) -> int:
        return sum(op.server_errors for op in self.operations)

    @property
    def violations(self) -> int:
        return sum(op.violations for op in self.operations)

    def summary(self, limit: int = 40) -> str:
        """One example of each kind of finding (operation, status, problem), and how often it came."""
        kinds: dict[tuple[str, int, str], tuple[int, Finding]] = {}
        for finding in self.findings:
            key = (finding.operation, finding.status, finding.problem.split(":", 1)[0])
            count, first = kinds.get(key, (0, finding))
            kinds[key] = (count + 1, first)
        lines = [f"{count}x {f.operation} -> {f.status}: {f.problem}\n    {f.request}"
                 for count, f in list(kinds.values())[:limit]]
        more = len(kinds) - limit
        return "\n".join(lines + ([f"... and {more} more kinds"] if more > 0 else []))


async def seed(api: Api) -> dict[str, list[str]]:
    """A tenant's resources whose ids the fuzzer puts in paths: an agent with two versions, a workflow,
    a finished run and a provider key."""
    agent = await api.create_agent()
    await api.request("PATCH", f"/v1/agents/{agent['id']}", json={"instructions": "Answer in one word."})
    workflow = await api.request("POST", "/v1/workflows", json={
        "name": f"wf-{uuid.uuid4().hex[:8]}", "spec": {"agents": {"a": {"model": "test/echo"}}, "steps": [
            {"id": "first", "agent": "a", "input": "hi"}]}})
    run = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hello"})
    assert run.status_code == 202, run.text
    await api.wait_run(run.json()["id"])
    key = await api.request("POST", "/v1/provider-keys", json={"provider": "openai", "api_key": "sk-" + "x" * 40})
    ids: dict[str, list[str]] = {
        "agent_id": [agent["id"]], "run_id": [run.json()["id"]], "version": ["1", "2"],
        "model": ["test/echo", "test/tools"], "name": ["openai", "anthropic"],
    }
    if workflow.status_code == 201:
        ids["workflow_id"] = [workflow.json()["id"]]
    if key.status_code == 201:
        ids["key_id"] = [key.json()["id"]]
    return ids


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletions last: the other operations keep finding the seeded resources.
    return sorted(operations, key=lambda op: op.method.upper() == "DELETE")


def _as_httpx(case: Any) -> dict[str, Any]:
    """The case as httpx request arguments, encoded as schemathesis' own requests transport would send it."""
    prepared = requests.Request(**_request_kwargs(case)).prepare()
    return {"method": prepared.method or "GET", "url": prepared.url or "/",
                      "headers": dict(prepared.headers), "content": prepared.body}


def _request_kwargs(case: Any) -> dict[str, Any]:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    return {key: kwargs[key] for key in ("method", "url", "headers", "params", "cookies", "json", "data", "files")
            if key in kwargs}


def fuzz_api(api: Api, loop: asyncio.AbstractEventLoop, ids: Mapping[str, list[str]], *, headers: Mapping[str, str],
             examples: int, seed_value: int = 0, derandomize: bool = True, shard: tuple[int, int] = (0, 1),
             progress: Callable[[OperationReport], None] | None = None) -> FuzzReport:
    """Fuzz every operation of ``api``'s document with ``examples`` valid and as many invalid cases each
    (the same cases every time unless ``derandomize`` is false); with ``shard=(i, n)``, only every n-th
    operation from the i-th on (n shards together cover the document, and may run side by side).

    Runs in a worker thread; requests go to ``loop`` (where ``api`` lives). Returns what happened;
    findings are collected rather than raised, so one bad route does not hide the others.
    """
    schema_doc = asyncio.run_coroutine_threadsafe(api.client.get("/openapi.json"), loop).result().json()
    schema = schemathesis.openapi.from_dict(schema_doc)
    report = FuzzReport()
    started = time.perf_counter()
    chooser = random.Random(seed_value)
    index, count = shard
    for operation in _operations(schema)[index::count]:
        op_report = OperationReport(f"{operation.method.upper()} {operation.path}")
        report.operations.append(op_report)
        inputs = [operation.path_parameters.items, operation.query.items, operation.headers.items,
                  operation.body.items]
        # Nothing to make invalid in an operation without parameters or body: valid cases only.
        modes = [schemathesis.GenerationMode.POSITIVE] + ([schemathesis.GenerationMode.NEGATIVE] if any(inputs) else [])
        for mode in modes:
            _fuzz_operation(operation, mode, examples, derandomize, functools.partial(
                _send_case, api, loop, ids, chooser, headers, op_report, report))
        if progress is not None:
            progress(op_report)
    report.duration_s = time.perf_counter() - started
    return report


def _send_case(api: Api, loop: asyncio.AbstractEventLoop, ids: Mapping[str, list[str]], chooser: random.Random,
               headers: Mapping[str, str], op_report: OperationReport, report: FuzzReport, case: Any) -> None:
    _send(api, loop, _with_ids(case, ids, chooser), headers, op_report, report)


def _with_ids(case: Any, ids: Mapping[str, list[str]], chooser: random.Random) -> Any:
    # Half the time a path id is a seeded resource's: the route then goes past its 404.
    for name in list(case.path_parameters or {}):
        if name in ids and chooser.random() < 0.5:
            case.path_parameters[name] = chooser.choice(ids[name])
    return case


def _fuzz_operation(operation: Any, mode: schemathesis.GenerationMode, examples: int, derandomize: bool,
                    send: Callable[[Any], None]) -> None:
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        send(case)

    one()


def _send(api: Api, loop: asyncio.AbstractEventLoop, case: Any, headers: Mapping[str, str],
          op_report: OperationReport, report: FuzzReport) -> None:
    case.headers = {**(case.headers or {}), **headers}
    try:
        request = _as_httpx(case)
    except (ValueError, UnicodeError):
        return  # a case no HTTP client can send (a header that is not latin-1): not a request at all
    response = asyncio.run_coroutine_threadsafe(api.client.request(**request), loop).result()
    op_report.cases += 1
    op_report.statuses[response.status_code] = op_report.statuses.get(response.status_code, 0) + 1
    if response.status_code >= 500:
        op_report.server_errors += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except (AssertionError, FailureGroup) as exc:
        failures = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
        if response.status_code < 500:
            op_report.violations += 1
        sent = f"{request['method']} {request['url']} {str(request['content'])[:300]}"
        for failure in failures:
            title = getattr(failure, "title", type(failure).__name__)
            message = getattr(failure, "message", str(failure))
            report.findings.append(Finding(op_report.label, response.status_code, f"{title}: {message[:600]}",
                                           f"{sent}\n    -> {response.text[:400]}"))


FUZZ_SHARDS = 4
"""The document's operations are fuzzed in this many tests per database, which pytest-xdist spreads over
the cores (each starts its own app and seeds its own resources)."""
FUZZ_EXAMPLES = int(os.environ.get("AGENTADAPTER_FUZZ_EXAMPLES", "8"))
"""Valid and as many invalid cases per operation in the suite (raise it for a deeper run; bench/fuzz_api.py
runs 10,000+ cases)."""


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(FUZZ_SHARDS))
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_every_operation_answers_without_5xx_and_as_documented(make_api: AppFactory, database: str,
                                                                     shard: int) -> None:
    async with make_api(database=database, server=SERVER_SETTINGS) as api:
        ids = await seed(api)
        tenant = await api.tenant()
        loop = asyncio.get_running_loop()
        report = await asyncio.to_thread(fuzz_api, api, loop, ids, headers=tenant.headers("admin"),
                                         examples=FUZZ_EXAMPLES, shard=(shard, FUZZ_SHARDS))
    assert len(report.operations) >= 10, report
    assert report.cases >= 10 * len(report.operations), report
    assert not report.findings, report.summary()


# ------------------------------------------------------------------ what the fuzzer found, pinned down


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_out_of_range_integers_nul_bytes_and_bad_cursors_are_422(make_api: AppFactory, database: str) -> None:
    async with make_api(database=database) as api:
        agent = await api.create_agent()
        run = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "hi"})
        run_id = run.json()["id"]
        odd_cursor = base64.urlsafe_b64encode(json.dumps(["0001-01-01T00:00:00+14:00", uuid.uuid4().hex]).encode())
        cases = [
            ("GET", f"/v1/agents/{agent['id']}/versions/79787167081", "version"),
            ("GET", f"/v1/agents/{agent['id']}/versions/{2**63}", "version"),
            ("GET", f"/v1/runs/{run_id}/messages?offset={2**40}", "offset"),
            ("GET", f"/v1/runs/{run_id}/events?after={2**31}", "after"),
            ("GET", "/v1/audit-logs?resource_type=%00agent", "resource_type"),
            ("GET", "/v1/agents?name=a%00b", "name"),
            ("GET", "/v1/usage?model=x%00", "model"),
            ("GET", "/v1/providers/open%00ai", "path"),
            ("GET", "/v1/audit-logs?until=0001-01-01T00:00:00%2B14:00", "until"),
            ("GET", "/v1/usage?since=0001-01-01T00:00:00%2B14:00", "since"),
            ("GET", f"/v1/agents?cursor={odd_cursor.decode()}", "cursor"),
            ("GET", "/v1/agents?cursor=WzEsMiwzXQ", "cursor"),  # [1,2,3]
        ]
        for method, path, param in cases:
            response = await api.request(method, path)
            assert response.status_code == 422, (path, response.text)
            assert response.json()["error"]["param"] == param, (path, response.text)
        events = await api.request("GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "99999999999"})
        assert events.status_code == 422 and events.json()["error"]["param"] == "Last-Event-ID", events.text
        superscript = await api.request("GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "²".encode("latin-1")})
        assert superscript.status_code == 422, superscript.text  # str.isdigit() says yes, int() says no


SCHEMAS_REFUSED: dict[str, tuple[dict[str, Any], str | tuple[str, ...] | None]] = {
    "remote": ({"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}, "properties.a.$ref"),
    "file": ({"type": "object", "properties": {"a": {"$ref": "file:///etc/passwd"}}}, "properties.a.$ref"),
    "missing": ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope"}}}, "properties.a.$ref"),
    "itself": ({"type": "object", "properties": {"a": {"$ref": "#"}}}, "properties.a.$ref"),
    "cycle": ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {
        "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
        "B": {"type": "object", "properties": {"c": {"$ref": "#/$defs/A"}}}}},
        ("$defs.A.properties.b.$ref", "$defs.B.properties.c.$ref")),  # the cycle is named where it closes
    "deep": (functools.reduce(lambda inner, _: {"type": "object", "properties": {"x": inner}}, range(20),
                              {"type": "string"}), None),
    "wide": ({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(6000)}}, None),
}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_unsafe_json_schemas_are_422_naming_the_field(make_api: AppFactory, database: str) -> None:
    async with make_api(database=database) as api:
        for label, (schema, where) in SCHEMAS_REFUSED.items():
            agent = await api.request("POST", "/v1/agents", json={
                "name": f"schema-{label}", "model": "test/echo", "output_schema": schema})
            assert agent.status_code == 422, (label, agent.text)
            error = agent.json()["error"]
            assert error["code"] == "invalid_schema", (label, agent.text)
            assert error["param"].startswith("output_schema"), (label, agent.text)
            if where is not None:
                expected = {f"output_schema.{one}" for one in ((where,) if isinstance(where, str) else where)}
                assert error["param"] in expected, (label, agent.text)
            chat = await api.request("POST", "/v1/chat/completions", json={
                "model": "test/echo", "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}})
            assert chat.status_code == 422, (label, chat.text)
            assert chat.json()["error"]["param"].startswith("response_format.json_schema.schema"), (label, chat.text)
        fine = {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"$ref": "#/$defs/A"}},
                "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}}}}
        agent = await api.request("POST", "/v1/agents", json={"name": "schema-fine", "model": "test/echo",
                                                              "output_schema": fine})
        assert agent.status_code == 201, agent.text


async def test_the_document_lists_each_routes_error_responses_in_the_error_shape(make_api: AppFactory) -> None:
    async with make_api() as api:
        document = (await api.client.get("/openapi.json")).json()
    paths = document["paths"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if not path.startswith("/v1/"):
                continue
            assert {"401", "403", "429"} <= codes, (method, path, codes)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= codes, (method, path, codes)
            if "{" in path:
                assert "404" in codes, (method, path, codes)
            for code in codes - {"200", "201", "202", "204"}:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                if path.startswith("/v1/messages"):  # Anthropic's error shape, or the body guard's (ours)
                    assert error_ref in schema["anyOf"], (method, path, code)
                else:
                    assert schema == error_ref, (method, path, code)
    assert "409" in paths["/v1/agents"]["post"]["responses"]
    assert "409" in paths["/v1/runs/{run_id}/cancel"]["post"]["responses"]
    assert "402" in paths["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in paths["/v1/providers"]["get"]["responses"]  # no parameters: nothing to be invalid
