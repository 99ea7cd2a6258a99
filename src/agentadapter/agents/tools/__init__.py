"""Tools for agents: the ``@tool`` decorator, :class:`FunctionTool`, and the :class:`ToolRegistry`.

See :mod:`agentadapter.agents.tools.decorator` and :mod:`agentadapter.agents.tools.registry`.
"""

from __future__ import annotations

from agentadapter.agents.tools.decorator import FunctionTool, coerce_agent_tool, tool
from agentadapter.agents.tools.registry import BUILTIN_TOOLS, ToolRegistry, default_registry

__all__ = ["BUILTIN_TOOLS", "FunctionTool", "ToolRegistry", "coerce_agent_tool", "default_registry", "tool"]
