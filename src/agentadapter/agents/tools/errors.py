"""Errors of the built-in tools: what a tool could not do, in words the model can act on.

An agent's loop turns any exception a tool raises into an error result for the model (``Error:
tool 'shell' failed: CommandRefused: ...``), so these errors are written for two readers: the
model, which should learn what to do instead, and the operator reading the run. Each carries a
short machine-readable ``reason`` that the audit records and tests use. Their part of the one tree
(drawn whole in :mod:`agentadapter.errors`)::

    AgentAdapterError
    └── ToolError                   a built-in tool could not do what was asked
        ├── CommandRefused          the shell sandbox refused a command; it was never started
        ├── CommandKilled           the shell sandbox stopped a running command (time, output)
        ├── FetchRefused            http_fetch refused a URL (scheme, forbidden address)
        ├── FetchError              http_fetch could not get readable text (status, network, type)
        ├── WebSearchError          the search provider failed or is not configured
        └── MCPToolError            an MCP server failed, or its tool reported an error
"""

from __future__ import annotations

from agentadapter.errors import AgentAdapterError

__all__ = [
    "CommandKilled",
    "CommandRefused",
    "FetchError",
    "FetchRefused",
    "MCPToolError",
    "ToolError",
    "WebSearchError",
]


class ToolError(AgentAdapterError):
    """A built-in tool could not do what was asked; the message says why and what to do."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        """A short machine-readable cause, e.g. ``not_allowed`` or ``forbidden_address``."""


class CommandRefused(ToolError):
    """The sandbox refused the command before starting it."""


class CommandKilled(ToolError):
    """The sandbox stopped the command while it ran (wall time, output volume, cancellation)."""


class FetchRefused(ToolError):
    """http_fetch refused the URL before connecting (or refused a redirect's target)."""


class FetchError(ToolError):
    """http_fetch reached the server but could not return readable text."""


class WebSearchError(ToolError):
    """The web search provider failed, answered something unreadable, or is not configured."""


class MCPToolError(ToolError):
    """An MCP server could not be reached, stopped, timed out, or its tool reported an error."""
