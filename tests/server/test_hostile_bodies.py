"""Hostile request bodies are refused on the way in, on SQLite and PostgreSQL, and the server keeps serving.

Deep, wide and huge JSON, NaN and Infinity, NUL characters and lone surrogates in values and keys of
every kind of body (agents, workflows, settings, runs, the gateway), YAML bombs, deep YAML and
``.nan``: each gets a 4xx in the one error shape, nothing is stored, and a normal request right
after works. Bodies are sent as raw bytes: a JSON encoder would refuse to write most of them.
The checks run inline for small bodies and in worker processes for large ones (``offload``), and
both paths are tried.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.conftest import Api, AppFactory
from store.databases import unique

JSON = {"Content-Type": "application/json"}

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(params=["sqlite", "postgres"])
async def api(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:
    async with make_api(database=request.param) as ready:
        yield ready


@pytest.fixture(params=["inline", "processes"])
async def guarded(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:
    """The API on SQLite, checking every body inline or every body in worker processes (at most 5000 values)."""
    offload = 1 << 30 if request.param == "inline" else 0
    async with make_api(server={"body_offload_bytes": offload, "body_check_processes": 1,
                                "max_body_nodes": 5000}) as ready:
        yield ready


def assert_error(response: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "code", "param", "details"}
    assert error["code"] == code, error
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    return dict(error)


async def post_raw(api: Api, path: str, raw: bytes | str, method: str = "POST") -> httpx.Response:
    content = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return await api.request(method, path, content=content, headers=JSON)


async def names(api: Api, resource: str) -> set[str]:
    listed = (await api.request("GET", f"/v1/{resource}", params={"limit": 100})).json()["data"]
    return {item["name"] for item in listed}


async def still_serves(api: Api) -> None:
    """A normal write right after works."""
    created = await api.create_agent()
    assert created["id"]


def nested(depth: int) -> str:
    """An agent body whose metadata makes the whole body ``depth`` levels deep."""
    return '{"name": "deep", "model": "test/echo", "metadata": ' + '{"a": ' * (depth - 1) + "1" + "}" * depth


async def test_deep_json_is_refused_before_parsing(api: Api) -> None:
    for depth in (65, 100_000):
        raw = nested(depth) if depth < 1000 else '{"output_schema": ' + "[" * depth + "]" * depth + "}"
        error = assert_error(await post_raw(api, "/v1/agents", raw), 422, "body_too_deep")
        assert error["details"]["max_depth"] == 64
    unclosed = await post_raw(api, "/v1/agents", "[" * 200_000)  # not even JSON: still only a 422
    assert_error(unclosed, 422, "body_too_deep")
    created = await post_raw(api, "/v1/agents", nested(30).replace('"deep"', json.dumps(unique("deep"))))
    assert created.status_code == 201, created.text
    assert await names(api, "agents") == {created.json()["name"]}
    await still_serves(api)


async def test_wide_and_huge_bodies(api: Api) -> None:
    wide = json.dumps({"name": "wide", "model": "test/echo", "metadata": {"list": [0] * 150_000}})
    assert_error(await post_raw(api, "/v1/agents", wide), 422, "too_many_values")
    huge = json.dumps({"name": "huge", "model": "test/echo", "instructions": "x" * 600_000})
    error = assert_error(await post_raw(api, "/v1/agents", huge), 422, "string_too_long", "instructions")
    assert error["details"]["length"] == 600_000
    long_key = json.dumps({"name": "key", "model": "test/echo", "metadata": {"k" * 600_000: 1}})
    assert_error(await post_raw(api, "/v1/agents", long_key), 422, "string_too_long")
    too_big = await post_raw(api, "/v1/agents", b'{"instructions": "' + b"x" * 2_000_000 + b'"}')
    assert_error(too_big, 413, "request_too_large")
    assert await names(api, "agents") == set()
    await still_serves(api)


async def test_a_chunked_body_is_held_to_the_size_limit(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "chunked", "instructions": "'
        for _ in range(40):
            yield b"x" * 65_536
        yield b'"}'

    response = await api.request("POST", "/v1/agents", content=chunks(), headers=JSON)
    assert_error(response, 413, "request_too_large")
    await still_serves(api)


NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e400")


@pytest.mark.parametrize("number", NON_FINITE)
async def test_nan_and_infinity_are_refused_everywhere(api: Api, number: str) -> None:
    agent = await api.create_agent()
    bodies = [
        ("POST", "/v1/agents", f'{{"name": "n", "model": "test/echo", "model_settings": {{"temperature": {number}}}}}',
         "model_settings.temperature"),
        ("POST", "/v1/agents", f'{{"name": "n", "model": "test/echo", "metadata": {{"a": [1, {number}]}}}}',
         "metadata.a[1]"),
        ("PATCH", "/v1/settings", f'{{"preferences": {{"x": {number}}}}}', "preferences.x"),
        ("POST", "/v1/runs", f'{{"agent_id": "{agent["id"]}", "input": "hi", "metadata": {{"x": {number}}}}}',
         "metadata.x"),
        ("POST", "/v1/workflows", f'{{"name": "w", "spec": {{"limits": {{"max_cost_usd": {number}}}}}}}',
         "spec.limits.max_cost_usd"),
        ("POST", "/v1/chat/completions",
         f'{{"model": "test/echo", "messages": [{{"role": "user", "content": "hi"}}], "temperature": {number}}}',
         "temperature"),
    ]
    for method, path, raw, param in bodies:
        assert_error(await post_raw(api, path, raw, method), 422, "non_finite_number", param)
    assert await names(api, "agents") == {agent["name"]}
    assert await names(api, "workflows") == set()
    assert (await api.request("GET", "/v1/runs")).json()["data"] == []
    await still_serves(api)


@pytest.mark.parametrize(("escape", "code"), [("\\u0000", "nul_character"), ("\\ud800", "lone_surrogate"),
                                              ("\\udfff", "lone_surrogate")])
async def test_nul_and_lone_surrogates_are_refused_in_values_and_keys(api: Api, escape: str, code: str) -> None:
    agent = await api.create_agent()
    bodies = [
        ("POST", "/v1/agents", f'{{"name": "a{escape}b", "model": "test/echo"}}', "name"),
        ("POST", "/v1/agents", f'{{"name": "n", "model": "test/echo", "instructions": "x{escape}"}}', "instructions"),
        ("POST", "/v1/agents", f'{{"name": "n", "model": "test/echo", "metadata": {{"k{escape}": 1}}}}', None),
        ("PATCH", f"/v1/agents/{agent['id']}", f'{{"description": "{escape}"}}', "description"),
        ("PUT", "/v1/settings", f'{{"default_model": "test/echo{escape}"}}', "default_model"),
        ("PATCH", "/v1/settings", f'{{"preferences": {{"{escape}": true}}}}', None),
        ("POST", "/v1/runs", f'{{"agent_id": "{agent["id"]}", "input": "hello {escape}"}}', "input"),
        ("POST", "/v1/workflows", f'{{"name": "w", "spec": {{"agents": [{{"name": "{escape}"}}]}}}}',
         "spec.agents[0].name"),
        ("POST", "/v1/workflows", f'{{"name": "w", "yaml": "name: x{escape}"}}', "yaml"),
        ("POST", "/v1/chat/completions",
         f'{{"model": "test/echo", "messages": [{{"role": "user", "content": "hi {escape}"}}]}}',
         "messages[0].content"),
        ("POST", "/v1/chat/completions", f'{{"model": "test/echo", "messages": [{{"role{escape}": "user"}}]}}', None),
    ]
    for method, path, raw, param in bodies:
        error = assert_error(await post_raw(api, path, raw, method), 422, code, param)
        assert "\\u" in error["message"]
    # The same characters written raw (UTF-8, and surrogates smuggled as CESU-style bytes) fare no better.
    raw_nul = b'{"name": "n", "model": "test/echo", "instructions": "a\x00b"}'
    assert (await post_raw(api, "/v1/agents", raw_nul)).status_code == 422
    smuggled = b'{"name": "n", "model": "test/echo", "instructions": "\xed\xa0\x80"}'
    assert_error(await post_raw(api, "/v1/agents", smuggled), 422, "lone_surrogate", "instructions")
    assert await names(api, "agents") == {agent["name"]}
    assert await names(api, "workflows") == set()
    assert (await api.request("GET", "/v1/runs")).json()["data"] == []
    settings = (await api.request("GET", "/v1/settings")).json()
    assert "\x00" not in json.dumps(settings) and "ud800" not in json.dumps(settings)
    paired = await post_raw(api, "/v1/agents",
                            '{"name": "emoji", "model": "test/echo", "instructions": "\\ud83d\\ude00"}')
    assert paired.status_code == 201, paired.text  # a surrogate *pair* is a character like any other
    assert paired.json()["instructions"] == "\U0001f600"
    await still_serves(api)


async def test_other_unreadable_bodies_get_a_4xx(api: Api) -> None:
    assert_error(await post_raw(api, "/v1/agents", b'{"name": '), 422, "invalid_json")
    gateway = await post_raw(api, "/v1/chat/completions", b'{"model": ')
    assert_error(gateway, 400, "invalid_json")  # as OpenAI answers
    assert_error(await post_raw(api, "/v1/agents", b'{"name": ' + b"7" * 5000 + b"}"), 422, "number_too_long")
    not_utf8 = await post_raw(api, "/v1/agents", b'{"name": "\xff\xfe"}')
    assert 400 <= not_utf8.status_code < 500 and "error" in not_utf8.json()
    await still_serves(api)


BILLION_LAUGHS = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

HOSTILE_YAML = {
    "billion laughs": (BILLION_LAUGHS, "aliases are not accepted"),
    "a single alias": ("agents: &x [{name: a, model: test/echo}]\nmore: *x\n", "aliases are not accepted"),
    "deep": ("agents: " + "[" * 70 + "]" * 70, "deeper than 64"),
    "deep block": ("".join(f"{'  ' * level}k{level}:\n" for level in range(80)) + "  " * 80 + "x", "deeper than 64"),
    ".nan": ("name: x\nlimits: {max_cost_usd: .nan}\n", "NaN and Infinity"),
    ".inf": ("name: x\nlimits: {max_cost_usd: -.inf}\n", "NaN and Infinity"),
    "binary": ("name: x\nblob: !!binary aGVsbG8=\n", "no JSON equivalent"),
    "set": ("name: x\ntags: !!set {a, b}\n", "no JSON equivalent"),
    "a python tag": ("name: !!python/object/apply:os.system [echo]\n", "python/object"),
    "non-string key": ("name: x\n1: one\n", "not a string"),
    "NUL": ('name: "x\\0y"\n', "NUL character"),
    "many nodes": ("agents: [" + ", ".join(["1"] * 6000) + "]", "more than 5000 values"),
}


@pytest.mark.parametrize("case", list(HOSTILE_YAML))
async def test_hostile_yaml_is_refused(guarded: Api, case: str) -> None:
    text, message = HOSTILE_YAML[case]
    response = await guarded.request("POST", "/v1/workflows", json={"name": "bomb", "yaml": text})
    if response.status_code == 422 and response.json()["error"]["code"] == "string_too_long":
        pytest.fail(f"refused for its size rather than its content: {response.text}")
    error = assert_error(response, 422, "invalid_yaml", "yaml")
    assert message in error["message"]
    assert await names(guarded, "workflows") == set()
    good = "name: ok\nstrategy: sequential\nagents:\n  - {name: writer, model: test/echo, instructions: Write.}\n"
    created = await guarded.request("POST", "/v1/workflows", json={"name": unique("flow"), "yaml": good})
    assert created.status_code == 201, created.text


async def test_yaml_keeps_dates_as_written_and_loads_large_documents(guarded: Api) -> None:
    agents = "".join(f"  - {{name: a{i}, model: test/echo, instructions: 'Step {i}, due 2025-01-0{i % 9 + 1}.'}}\n"
                     for i in range(40))
    text = f"name: big\nstrategy: sequential\ndescription: written 2024-05-01\nagents:\n{agents}"
    text += "# padding so the body is checked off the loop\n" * 500
    created = await guarded.request("POST", "/v1/workflows", json={"name": unique("big"), "yaml": text})
    assert created.status_code == 201, created.text
    spec = created.json()["spec"]
    assert len(spec["agents"]) == 40
    assert spec["description"] == "written 2024-05-01"


async def test_healthz_answers_while_hostile_bodies_are_refused(make_api: AppFactory) -> None:
    async with make_api(server={"body_offload_bytes": 4096, "body_check_processes": 1}) as api:
        await api.tenant()
        hostile = ["[" * 900_000, '{"a": [' + "0," * 300_000 + "0]}", '{"a": "' + "\\u0000" * 150_000 + '"}',
                   '{"a": ' + "[" * 60 + "NaN" + "]" * 60 + "}"]

        async def send_hostile(index: int) -> int:
            response = await post_raw(api, "/v1/agents", hostile[index % len(hostile)])
            return response.status_code

        batch = [asyncio.create_task(send_hostile(index)) for index in range(24)]
        answers: list[dict[str, Any]] = []
        while not all(task.done() for task in batch) or not answers:
            health = await api.client.get("/healthz")
            assert health.status_code == 200, health.text
            answers.append(health.json())
            await asyncio.sleep(0)  # /healthz never waits on anything: let the other requests' tasks run
        statuses = await asyncio.gather(*batch)
        assert set(statuses) == {422}, statuses
        assert len(answers) >= 1
        await still_serves(api)
