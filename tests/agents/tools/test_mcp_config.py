"""MCP servers by configuration: declarations and their trust rules, the agent that connects them for each
run, and workflow files that declare them (stdio and streamable HTTP, against ``fakes/mcp_server.py``)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from agentadapter.agents import LLMAgent, RunConfig
from agentadapter.agents.tools.errors import FetchRefused, MCPToolError
from agentadapter.agents.tools.mcp_config import MCPAgent, MCPServerSpec, check_mcp_address, parse_mcp_servers
from agentadapter.agents.tools.ssrf import AddressPolicy, StaticResolver
from agentadapter.llm.errors import ConfigurationError
from agentadapter.orchestrator import Orchestrator, WorkflowError, load_workflow
from agentadapter.testing import offline_llm
from fakes.mcp_server import SCRIPT, serve_http


def test_declarations_and_where_they_may_come_from() -> None:
    specs = parse_mcp_servers(
        [
            {"name": "web", "url": "https://mcp.example/mcp", "tools": ["add"]},
            {"name": "local", "command": "mcp-files", "args": ["--root", "/srv"]},
        ],
        allow_stdio=True,
    )
    assert [(s.name, s.transport) for s in specs] == [("web", "http"), ("local", "stdio")]
    with pytest.raises(ConfigurationError, match=r"mcp_servers\[1\]\.command: stdio MCP servers .* operator's"):
        parse_mcp_servers(
            [{"name": "web", "url": "https://mcp.example/mcp"}, {"name": "local", "command": "x"}], allow_stdio=False
        )
    with pytest.raises(ConfigurationError, match=r"mcp_servers\[0\]: .*either url .* or command"):
        parse_mcp_servers([{"name": "both", "url": "https://a/mcp", "command": "x"}], allow_stdio=True)
    with pytest.raises(ConfigurationError, match=r"mcp_servers\[1\]\.name: another MCP server is named 'a'"):
        parse_mcp_servers(
            [{"name": "a", "url": "https://a/mcp"}, {"name": "a", "url": "https://b/mcp"}], allow_stdio=True
        )
    with pytest.raises(ConfigurationError, match=r"mcp_servers\[0\]\.name"):
        parse_mcp_servers([{"name": "bad name", "url": "https://a/mcp"}], allow_stdio=True)


async def test_the_address_rules_of_http_fetch_apply() -> None:
    closed = AddressPolicy()
    with pytest.raises(FetchRefused, match="loopback"):
        await check_mcp_address("http://127.0.0.1:8000/mcp", closed)
    with pytest.raises(FetchRefused, match="private"):  # a name is judged on what it resolves to
        await check_mcp_address("http://tools.corp/mcp", closed, StaticResolver({"tools.corp": "10.1.2.3"}))
    with pytest.raises(FetchRefused, match="metadata"):
        await check_mcp_address("http://169.254.169.254/mcp", AddressPolicy(allow_private=True))
    await check_mcp_address("http://tools.corp/mcp", closed, StaticResolver({"tools.corp": "93.184.216.34"}))
    await check_mcp_address("http://127.0.0.1:8000/mcp", AddressPolicy(allowed_networks=("127.0.0.1/32",)))
    await check_mcp_address("http://tools.corp/mcp", AddressPolicy(allowed_hosts=("tools.corp",)))


async def test_an_agent_uses_an_http_servers_tools_over_one_connection_per_run() -> None:
    seen: list[dict[str, str]] = []
    async with serve_http("calc", seen_headers=seen) as url:
        spec = MCPServerSpec(name="calc", url=url, headers={"Authorization": "Bearer t0k"}, tools=["add", "echo"])
        agent = MCPAgent(
            LLMAgent("mathematician", model="test/tools"),
            [spec],
            policy=AddressPolicy(allowed_networks=("127.0.0.1/32",)),
        )
        result = await agent.run("Add things up", RunConfig(llm=offline_llm()))
        assert sorted(call.name for call in result.tool_calls) == ["calc__add", "calc__echo"]
        assert all(not call.is_error for call in result.tool_calls)
        methods = [h.get("mcp-method") for h in seen]
        # One handshake for the run, then every call over that connection.
        assert methods == ["server/discover", "tools/list", "tools/call", "tools/call"]
        assert {h.get("authorization") for h in seen} == {"Bearer t0k"}
        again = await agent.run("Once more", RunConfig(llm=offline_llm()))
        assert len(again.tool_calls) == 2
        assert [h.get("mcp-method") for h in seen[4:]] == methods  # a new run, a new connection

    refused = MCPAgent(LLMAgent("m", model="test/tools"), [MCPServerSpec(name="calc", url=url)], policy=AddressPolicy())
    with pytest.raises(FetchRefused, match="loopback"):
        await refused.run("hi", RunConfig(llm=offline_llm()))


class Rebinding:
    """A name server that answers a public address to the first lookup and loopback to every later one."""

    def __init__(self) -> None:
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        return ["93.184.216.34"] if self.lookups == 1 else ["127.0.0.1"]


async def test_a_name_that_rebinds_to_loopback_after_the_check_reaches_nothing() -> None:
    async with serve_http("calc") as url:
        # "localhost" is what the system resolver would connect to: the server above, which the rules forbid.
        rebinding = url.replace("127.0.0.1", "localhost")
        resolver = Rebinding()
        agent = MCPAgent(LLMAgent("m", model="test/tools"), [MCPServerSpec(name="calc", url=rebinding, tools=["add"])],
                         policy=AddressPolicy(), resolver=resolver)
        with pytest.raises(MCPToolError, match=r"refused to connect to localhost \(127\.0\.0\.1\).*loopback"):
            await agent.run("Add things up", RunConfig(llm=offline_llm()))
        assert resolver.lookups >= 2  # checked, then resolved again for the connection and refused


async def test_a_named_server_is_reached_at_its_checked_address_with_its_own_host_name() -> None:
    seen: list[dict[str, str]] = []
    async with serve_http("calc", seen_headers=seen, host_names=("calc.internal",)) as url:
        named = url.replace("127.0.0.1", "calc.internal")  # resolves only through the resolver below
        agent = MCPAgent(LLMAgent("m", model="test/tools"), [MCPServerSpec(name="calc", url=named, tools=["add"])],
                         policy=AddressPolicy(allowed_networks=("127.0.0.1/32",)),
                         resolver=StaticResolver({"calc.internal": "127.0.0.1"}))
        result = await agent.run("Add things up", RunConfig(llm=offline_llm()))
    assert result.tool_calls and all(not call.is_error for call in result.tool_calls)
    assert {h["host"] for h in seen} == {named.split("/")[2]}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), "utf-8")
    return path


async def test_a_workflow_file_declares_a_stdio_server_for_its_agents(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "calc.yaml",
        f"""
        name: calc
        mcp_servers:
          - {{name: fake, command: {sys.executable!r}, args: [{SCRIPT!r}], tools: [add, echo]}}
        agents:
          - {{name: mathematician, model: test/tools, mcp_servers: [fake]}}
          - {{name: writer, model: test/echo}}
    """,
    )
    workflow = load_workflow(path)
    assert isinstance(workflow.agents["mathematician"], MCPAgent)
    events = []
    result = await Orchestrator(llm=offline_llm()).run_workflow(workflow, "add it up", on_event=events.append)
    assert result.status == "completed", result.error
    calls = sorted(e.data["name"] for e in events if e.type == "tool_call")
    assert calls == ["fake__add", "fake__echo"]
    assert all(not e.data["is_error"] for e in events if e.type == "tool_result")


def test_a_workflow_names_only_servers_it_declares(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        """
        mcp_servers:
          - {name: web, url: "ftp://nowhere/mcp"}
        agents:
          - {name: a, model: test/echo, mcp_servers: [web, other]}
    """,
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    message = str(caught.value)
    assert "bad.yaml:3: mcp_servers[0]: Value error, url must be an http(s) URL" in message
    assert "agents[0].mcp_servers[1]: no MCP server named 'other'" in message


def test_agentadapter_yaml_declares_servers_workflows_name(tmp_path: Path) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from agentadapter.cli.run import register

    config = write(
        tmp_path,
        "agentadapter.yaml",
        f"""
        mcp_servers:
          - {{name: fake, command: {sys.executable!r}, args: [{SCRIPT!r}], tools: [echo]}}
    """,
    )
    flow = write(
        tmp_path,
        "flow.yaml",
        """
        agents:
          - {name: caller, model: test/tools, mcp_servers: [fake]}
    """,
    )
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app.command()(lambda: None)
    result = CliRunner().invoke(app, ["run", str(flow), "--config", str(config), "--input", "hi", "--events"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["data"]["name"] for e in events if e["type"] == "tool_call"] == ["fake__echo"]
    assert [e["data"]["is_error"] for e in events if e["type"] == "tool_result"] == [False]


def test_run_checks_the_model_of_an_agent_with_mcp_servers_before_connecting(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from agentadapter.cli.run import register

    flow = write(
        tmp_path,
        "flow.yaml",
        """
        mcp_servers:
          - {name: web, url: "https://mcp.example/mcp"}
        agents:
          - {name: a, model: nowhere/model-x, mcp_servers: [web]}
    """,
    )
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app.command()(lambda: None)
    result = CliRunner().invoke(app, ["run", str(flow), "--input", "hi"])
    assert result.exit_code == 2 and "unknown provider 'nowhere'" in result.stderr


async def test_an_orchestrated_run_shares_one_connection_per_server_and_closes_it_at_its_end(tmp_path: Path) -> None:
    import os

    path = write(
        tmp_path,
        "pids.yaml",
        f"""
        mcp_servers:
          - {{name: fake, command: {sys.executable!r}, args: [{SCRIPT!r}], tools: [pid]}}
        agents:
          - {{name: first, model: test/tools, mcp_servers: [fake]}}
          - {{name: second, model: test/tools, mcp_servers: [fake]}}
          - {{name: third, model: test/tools, mcp_servers: [fake]}}
    """,
    )
    events = []
    result = await Orchestrator(llm=offline_llm()).run_workflow(load_workflow(path), "pid?", on_event=events.append)
    assert result.status == "completed", result.error
    pids = {int(e.data["content"]) for e in events if e.type == "tool_result"}
    assert len([e for e in events if e.type == "tool_result"]) == 3 and len(pids) == 1  # one server process
    with pytest.raises(ProcessLookupError):  # the run ended: the server process was stopped (and reaped)
        os.kill(pids.pop(), 0)
