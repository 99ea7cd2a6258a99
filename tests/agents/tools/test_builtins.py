"""The built-in tools by name: declared in BUILTIN_TOOLS, imported only when asked for."""

from __future__ import annotations

import subprocess
import sys

from agentadapter.agents import FunctionTool, ToolRegistry, create_agent
from agentadapter.agents.tools import BUILTIN_TOOLS


def test_builtins_are_declared_and_resolve_to_tools() -> None:
    assert set(BUILTIN_TOOLS) == {"shell", "web_search", "http_fetch"}
    registry = ToolRegistry(lazy=BUILTIN_TOOLS)
    for name in BUILTIN_TOOLS:
        tool = registry.get(name)
        assert isinstance(tool, FunctionTool) and tool.name == name and tool.timeout is not None
    assert registry.get("shell").takes_context and registry.get("http_fetch").takes_context
    assert list(registry.get("http_fetch").parameters["properties"]) == ["url"]
    assert list(registry.get("web_search").parameters["properties"]) == ["query", "max_results"]


def test_specs_name_builtin_tools() -> None:
    agent = create_agent({"name": "worker", "model": "test/echo", "tools": ["shell", "web_search", "http_fetch"]})
    assert [t.name for t in agent.prepared_tools()] == ["shell", "web_search", "http_fetch"]


def test_importing_the_agent_layer_does_not_import_the_tools() -> None:
    code = ("import sys, agentadapter.agents; "
            "print(sorted(m for m in sys.modules if m.startswith(('agentadapter.agents.tools.', 'mcp'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['agentadapter.agents.tools.decorator', 'agentadapter.agents.tools.registry']"


def test_truncation_is_always_stated() -> None:
    from agentadapter.agents.tools._text import cap_text, decode_head

    assert cap_text("short", 10) == "short"
    assert cap_text("x" * 30, 10, what="page text") == "x" * 10 + (
        "\n[page text truncated: showing the first 10 of 30 characters]")
    assert decode_head("héllo".encode()[:2], truncated=True) == "h"  # no half character at the cut
    assert decode_head(b"ok", truncated=False) == "ok"
