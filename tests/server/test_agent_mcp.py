"""Stored agents that name MCP servers: through the API an agent uses a streamable-HTTP server's tools;
stdio servers, forbidden addresses and secrets in responses are refused or masked."""

from __future__ import annotations

from typing import Any

from fakes.mcp_server import serve_http
from server.conftest import AppFactory

LOOPBACK_ALLOWED = {"mcp_allowed_networks": ["127.0.0.1/32"]}


def server_entry(url: str, **fields: Any) -> dict[str, Any]:
    return {"name": "calc", "url": url, "headers": {"Authorization": "Bearer t0k"}, "tools": ["add", "echo"], **fields}


async def test_a_stored_agent_uses_an_mcp_servers_tool_over_streamable_http(make_api: AppFactory) -> None:
    seen: list[dict[str, str]] = []
    async with serve_http("calc", seen_headers=seen) as url, make_api(server=LOOPBACK_ALLOWED) as api:
        agent = await api.create_agent(model="test/tools", mcp_servers=[server_entry(url)])
        assert agent["mcp_servers"][0]["headers"] == {"Authorization": "***"}  # never shown back
        versions = (await api.request("GET", f"/v1/agents/{agent['id']}/versions")).json()["data"]
        assert versions[0]["spec"]["mcp_servers"][0]["headers"] == {"Authorization": "***"}

        started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Add 2 and 40"})
        assert started.status_code == 202, started.text
        run = await api.wait_run(started.json()["id"])
        assert run["status"] == "completed", run.get("error")
        methods = [h.get("mcp-method") for h in seen]
        assert methods == ["server/discover", "tools/list", "tools/call", "tools/call"]
        assert {h.get("authorization") for h in seen} == {"Bearer t0k"}
        assert {h.get("mcp-name") for h in seen if h.get("mcp-method") == "tools/call"} == {"add", "echo"}


async def test_what_a_tenant_may_not_declare(make_api: AppFactory) -> None:
    async with make_api() as api:

        async def refused(servers: list[dict[str, Any]]) -> dict[str, Any]:
            response = await api.request(
                "POST", "/v1/agents", json={"name": "m", "model": "test/tools", "mcp_servers": servers}
            )
            assert response.status_code == 422, response.text
            return dict(response.json()["error"])

        error = await refused([{"name": "local", "url": "http://127.0.0.1:9/mcp"}])
        assert (error["param"], error["code"]) == ("mcp_servers[0].url", "forbidden_address")
        assert "loopback" in error["message"]
        error = await refused([{"name": "meta", "url": "http://169.254.169.254/mcp"}])
        assert error["code"] == "forbidden_address" and "metadata" in error["message"]
        error = await refused([{"name": "local", "command": "/bin/sh", "url": "https://mcp.example/mcp"}])
        assert error["param"].startswith("mcp_servers") and "command" in error["param"]
        error = await refused([{"name": "a", "url": "https://a.example/mcp"}, {"name": "a", "url": "https://b/mcp"}])
        assert error["param"] == "mcp_servers[1].name"
        response = await api.request(
            "POST",
            "/v1/workflows",
            json={
                "name": "w",
                "spec": {
                    "mcp_servers": [{"name": "sh", "command": "/bin/sh"}],
                    "agents": [{"name": "a", "model": "test/echo"}],
                },
            },
        )
        assert response.status_code == 422 and response.json()["error"]["param"] == "spec.mcp_servers"


async def test_a_name_that_resolves_to_loopback_is_refused_when_the_run_connects(make_api: AppFactory) -> None:
    async with serve_http("calc") as url, make_api() as api:
        named = url.replace("127.0.0.1", "localhost")  # a name: judged on what it resolves to, at connection time
        agent = await api.create_agent(model="test/tools", mcp_servers=[server_entry(named)])
        started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Add"})
        run = await api.wait_run(started.json()["id"])
        assert run["status"] == "failed"
        assert "loopback" in run["error"]["message"]


async def test_a_stored_agent_names_a_server_the_operator_declared(make_api: AppFactory, tmp_path) -> None:
    import sys

    from agentadapter.llm.client import LLM
    from fakes.mcp_server import SCRIPT

    operator = {"mcp_servers": [{"name": "files", "command": sys.executable, "args": [SCRIPT], "tools": ["echo"]}]}
    async with make_api(llm=LLM(config=operator, environ={})) as api:
        agent = await api.create_agent(model="test/tools", mcp_servers=[{"name": "files"}])
        started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Echo"})
        run = await api.wait_run(started.json()["id"])
        assert run["status"] == "completed", run.get("error")
        assert run["output"].startswith("files__echo: ")  # the test model answers from the tool's result
        response = await api.request(
            "POST", "/v1/agents", json={"name": "x", "model": "test/tools", "mcp_servers": [{"name": "nothing"}]}
        )
        assert response.status_code == 422
        error = response.json()["error"]
        assert (error["param"], error["code"]) == ("mcp_servers[0].name", "unknown_mcp_server")
        assert "files" in error["message"]
