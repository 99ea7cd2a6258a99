"""Tools for agents: the ``@tool`` decorator, :class:`FunctionTool`, the :class:`ToolRegistry`, and the
built-in tools (``shell``, ``web_search``, ``http_fetch``), ``file_search`` over a search it is handed,
and MCP servers.

The built-ins and MCP load lazily on first use (the MCP SDK is an optional extra). See
``docs/tools.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentadapter.agents.tools.decorator import FunctionTool, coerce_agent_tool, tool
from agentadapter.agents.tools.registry import BUILTIN_TOOLS, ToolRegistry, default_registry

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from agentadapter.agents.tools.audit import InMemoryToolAudit, ToolAudit, ToolAuditRecord
    from agentadapter.agents.tools.code import PythonCode
    from agentadapter.agents.tools.errors import (
        CommandKilled,
        CommandRefused,
        FetchError,
        FetchRefused,
        MCPToolError,
        ToolError,
        WebSearchError,
    )
    from agentadapter.agents.tools.file_search import FileSearch
    from agentadapter.agents.tools.http_fetch import FetchPolicy, HTTPFetch
    from agentadapter.agents.tools.mcp_config import MCPAgent, MCPServerSpec
    from agentadapter.agents.tools.mcp_tools import MCPOptions, MCPServer
    from agentadapter.agents.tools.sandbox import SandboxPolicy
    from agentadapter.agents.tools.shell import Shell
    from agentadapter.agents.tools.web_search import (
        BraveProvider,
        SearchProvider,
        SearXNGProvider,
        TavilyProvider,
        WebSearch,
    )

_LAZY: dict[str, str] = {
    "InMemoryToolAudit": "audit", "ToolAudit": "audit", "ToolAuditRecord": "audit",
    "CommandKilled": "errors", "CommandRefused": "errors", "FetchError": "errors", "FetchRefused": "errors",
    "MCPToolError": "errors", "ToolError": "errors", "WebSearchError": "errors",
    "FetchPolicy": "http_fetch", "HTTPFetch": "http_fetch", "FileSearch": "file_search",
    "MCPOptions": "mcp_tools", "MCPServer": "mcp_tools", "MCPAgent": "mcp_config", "MCPServerSpec": "mcp_config",
    "PythonCode": "code",
    "SandboxPolicy": "sandbox", "Shell": "shell",
    "BraveProvider": "web_search", "SearXNGProvider": "web_search", "SearchProvider": "web_search",
    "TavilyProvider": "web_search", "WebSearch": "web_search",
}

__all__ = [
    "BUILTIN_TOOLS",
    "BraveProvider",
    "CommandKilled",
    "CommandRefused",
    "FetchError",
    "FetchPolicy",
    "FetchRefused",
    "FileSearch",
    "FunctionTool",
    "HTTPFetch",
    "InMemoryToolAudit",
    "MCPAgent",
    "MCPOptions",
    "MCPServer",
    "MCPServerSpec",
    "MCPToolError",
    "PythonCode",
    "SandboxPolicy",
    "SearXNGProvider",
    "SearchProvider",
    "Shell",
    "TavilyProvider",
    "ToolAudit",
    "ToolAuditRecord",
    "ToolError",
    "ToolRegistry",
    "WebSearch",
    "WebSearchError",
    "coerce_agent_tool",
    "default_registry",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentadapter.agents.tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"agentadapter.agents.tools.{module}"), name)
    globals()[name] = value
    return value
