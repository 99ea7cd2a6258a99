"""MCP servers as tool sources, against the small SDK-built server in ``fakes/mcp_server.py``.

The stdio tests start it as a subprocess; the HTTP tests serve it on loopback with uvicorn.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from agentadapter.agents import LLMAgent, ToolRegistry
from agentadapter.agents.tools.errors import MCPToolError
from agentadapter.agents.tools.mcp_tools import MCPOptions, MCPServer, mcp_tool_name
from agentadapter.llm.errors import ConfigurationError
from fakes.mcp_server import SCRIPT, serve_http

from .conftest import call, reply, scripted, tool_results

TOOL_NAMES = ["fake__add", "fake__echo", "fake__search_files", "fake__fail", "fake__big", "fake__pid", "fake__crash",
              "fake__files_read"]


def fake_server(**options: object) -> MCPServer:
    return MCPServer.stdio("fake", sys.executable, [SCRIPT], options=MCPOptions(**options))  # type: ignore[arg-type]


@pytest.fixture
async def server() -> AsyncIterator[MCPServer]:
    async with fake_server() as started:
        yield started


async def test_tools_are_listed_with_their_schemas_passed_through(server: MCPServer) -> None:
    tools = await server.tools()
    assert [t.name for t in tools] == TOOL_NAMES
    listed = {t.name: t for t in await server.list_tools()}
    by_name = {t.name: t for t in tools}
    search = by_name["fake__search_files"]
    assert search.parameters == listed["search_files"].input_schema
    assert search.parameters["properties"]["kind"]["enum"] == ["file", "dir"]
    assert search.description == "Search files by pattern (a tool with a richer schema)."
    assert by_name["fake__files_read"].description.startswith("A tool whose name has a dot")


async def test_calls_results_and_tool_errors(server: MCPServer) -> None:
    assert await server.call_tool("add", {"a": 2, "b": 3}) == "5"
    assert await server.call_tool("search_files", {"pattern": "*.py", "tags": ["a", "b"]}) == "*.py:file:10:a,b"
    with pytest.raises(MCPToolError, match=r"reported an error: .*boom") as caught:
        await server.call_tool("fail", {"message": "boom"})
    assert caught.value.reason == "tool_error"
    with pytest.raises(MCPToolError, match="validation error"):  # the server validates the arguments
        await server.call_tool("add", {"a": "two"})
    with pytest.raises(MCPToolError, match="Unknown tool"):
        await server.call_tool("no_such_tool", {})
    server.options = MCPOptions(max_result_chars=100)
    capped = await server.call_tool("big", {"size": 5000})
    assert capped.endswith("[result of big truncated: showing the first 100 of 5000 characters]")


async def test_an_agent_uses_an_mcp_tool_end_to_end(server: MCPServer) -> None:
    script, _, config = scripted(
        reply(call("fake__add", a=2, b=40)),
        reply(call("fake__fail", message="disk full"), call("fake__echo", text="still here")),
        reply(call("fake__add", a="x")),
        "The answer is 42.",
    )
    agent = LLMAgent("mathematician", model="script/m", tools=await server.tools())
    result = await agent.run("What is 2 + 40?", config)
    assert result.output == "The answer is 42."
    assert tool_results(result) == [
        ("42", False),
        (tool_results(result)[1][0], True),
        ("still here", False),
        (tool_results(result)[3][0], True),
    ]
    assert "disk full" in tool_results(result)[1][0] and "MCPToolError" in tool_results(result)[1][0]
    assert "validation error" in tool_results(result)[3][0]
    offered = {t.name: t for t in script.requests[0].tools}
    assert offered["fake__add"].parameters["required"] == ["a", "b"]


async def test_a_crashed_server_is_restarted(server: MCPServer) -> None:
    first_pid = int(await server.call_tool("pid"))
    with pytest.raises(MCPToolError, match=r"stopped while running 'crash'.*restarted \(restart 1 of 3\)") as caught:
        await server.call_tool("crash")
    assert caught.value.reason == "crashed" and "may or may not have taken effect" in caught.value.message
    second_pid = int(await server.call_tool("pid"))
    assert second_pid != first_pid and server.running
    # Killed while idle: a read-only tool (the server says so) is re-sent after the restart ...
    os.kill(second_pid, signal.SIGKILL)
    third_pid = int(await server.call_tool("pid", repeatable=True))
    assert third_pid not in (first_pid, second_pid)
    # ... any other call is reported, and the next one reaches the restarted server.
    os.kill(third_pid, signal.SIGKILL)
    with pytest.raises(MCPToolError, match="restarted"):
        await server.call_tool("echo", {"text": "lost?"})
    assert await server.call_tool("echo", {"text": "back"}) == "back"


async def test_read_only_tools_are_retried_after_a_crash_by_the_agent_tool(server: MCPServer) -> None:
    pid_tool = {t.name: t for t in await server.tools()}["fake__pid"]
    before = int(await pid_tool.invoke({}))
    os.kill(before, signal.SIGKILL)
    assert int(await pid_tool.invoke({})) != before


async def test_a_server_that_keeps_crashing_is_left_down() -> None:
    async with fake_server(max_restarts=1) as server:
        with pytest.raises(MCPToolError, match="restart 1 of 1"):
            await server.call_tool("crash")
        with pytest.raises(MCPToolError, match="not restarted again"):
            await server.call_tool("crash")
        with pytest.raises(MCPToolError, match="left down") as caught:
            await server.call_tool("echo", {"text": "x"})
        assert caught.value.reason == "gave_up" and not server.running
        await server.restart()
        assert await server.call_tool("echo", {"text": "fixed"}) == "fixed"


async def test_streamable_http() -> None:
    seen: list[dict[str, str]] = []
    async with serve_http("web", seen_headers=seen) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        server = MCPServer.http("web", url, headers={"X-Team": "tools"}, options=MCPOptions(connect_timeout_s=5))
        try:
            assert [t.name for t in await server.tools()] == [n.replace("fake", "web") for n in TOOL_NAMES]
            assert await server.call_tool("echo", {"text": "over http"}) == "over http"
        finally:
            await server.close()
    assert seen and all(headers.get("x-team") == "tools" for headers in seen)
    # The server goes away and comes back: the session is re-established.
    server = MCPServer.http("web", url, options=MCPOptions(connect_timeout_s=5))
    async with serve_http("web", port=port):
        assert await server.call_tool("add", {"a": 1, "b": 1}) == "2"
    with pytest.raises(MCPToolError, match=r"stopped while running 'add'|cannot start or reach"):
        await server.call_tool("add", {"a": 1, "b": 1})
    async with serve_http("web", port=port):
        assert await server.call_tool("add", {"a": 2, "b": 2}) == "4"
        await server.close()


async def test_servers_that_cannot_start_say_why() -> None:
    missing = MCPServer.stdio("missing", "/nonexistent/mcp-server")
    with pytest.raises(MCPToolError, match="cannot start or reach the MCP server 'missing'") as caught:
        await missing.tools()
    assert caught.value.reason == "connect"
    silent = MCPServer.stdio("silent", sys.executable, ["-c", "import sys; sys.stdin.read()"],
                             options=MCPOptions(connect_timeout_s=0.5))
    with pytest.raises(MCPToolError, match=r"did not complete the MCP handshake within 0\.5 s") as caught:
        await silent.start()
    assert caught.value.reason == "connect_timeout"
    nobody = MCPServer.http("nobody", "http://127.0.0.1:9/mcp", options=MCPOptions(connect_timeout_s=5))
    with pytest.raises(MCPToolError, match="cannot start or reach the MCP server 'nobody'"):
        await nobody.start()


async def test_calls_from_another_event_loop_go_to_the_server_s_loop(server: MCPServer) -> None:
    tools = {t.name: t for t in await server.tools()}

    def in_another_loop() -> object:
        return asyncio.run(tools["fake__add"].invoke({"a": 20, "b": 22}))

    assert await asyncio.to_thread(in_another_loop) == "42"


async def test_configuration_from_data_filters_and_registration() -> None:
    server = MCPServer.from_dict({"name": "files", "command": sys.executable, "args": [SCRIPT],
                                  "tool_prefix": "fs", "include": ["echo", "files.read"], "call_timeout_s": 5})
    registry = ToolRegistry()
    async with server:
        assert await server.register(registry) == ["fs__echo", "fs__files_read"]
        assert await registry.get("fs__files_read").invoke({"path": "a.txt"}) == "contents of a.txt"
    http = MCPServer.from_dict({"name": "remote", "url": "http://127.0.0.1:1/mcp", "headers": {"A": "b"}})
    assert http.transport == "http" and http.headers == {"A": "b"}
    with pytest.raises(ConfigurationError, match=r"'command'.*or 'url'"):
        MCPServer.from_dict({"name": "neither"})
    with pytest.raises(ConfigurationError, match="name"):
        MCPServer.stdio("bad name!", "x")
    with pytest.raises(ConfigurationError, match="http"):
        MCPServer.http("x", "ftp://host/mcp")


def test_tool_names_are_valid_unique_and_documented() -> None:
    assert mcp_tool_name("github", "create_issue") == "github__create_issue"
    assert mcp_tool_name("", "files.read") == "files_read"
    assert mcp_tool_name("srv", "a/b c") == "srv__a_b_c"
    long = mcp_tool_name("server", "x" * 80)
    assert len(long) == 64 and long.startswith("server__xxx")
    assert mcp_tool_name("s", "a.b", taken=["s__a_b"]) != "s__a_b"
