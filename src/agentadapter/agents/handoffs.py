"""Handoffs: an agent passes the conversation to another agent by calling a tool.

Each entry of an agent's ``handoffs`` becomes a tool named ``transfer_to_<agent>`` (no arguments);
when the model calls it, the loop records the handoff and the receiving agent continues the same
run, with its own instructions, tools and model, on the conversation so far. An optional
``input_filter`` trims what the receiver sees (:func:`remove_tool_messages`, :func:`keep_last`, or
any function from messages to messages).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Message, Part, TextPart, ToolCallPart, ToolResultPart
from agentadapter.llm.tools import Tool

if TYPE_CHECKING:
    from agentadapter.agents.base import BaseAgent

__all__ = ["Handoff", "InputFilter", "coerce_handoff", "handoff", "keep_last", "remove_tool_messages", "tool_name_for"]

InputFilter: TypeAlias = Callable[[list[Message]], list[Message]]


def tool_name_for(agent_name: str) -> str:
    """``transfer_to_<agent>`` with the name reduced to what every provider accepts in a tool name."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", agent_name.strip()).strip("_").lower() or "agent"
    return f"transfer_to_{slug}"[:64]


@dataclass(slots=True)
class Handoff:
    """A way out of an agent: the receiving agent, its tool, and what the receiver gets to see."""

    agent: BaseAgent
    """The agent that takes over."""
    tool_name: str = ""
    """The tool the model calls; default ``transfer_to_<agent name>``."""
    description: str = ""
    """What the model reads about when to hand off; default from the receiver's description."""
    input_filter: InputFilter | None = None
    """Trims the conversation the receiver sees; None: it sees everything so far."""

    def __post_init__(self) -> None:
        if not self.tool_name:
            self.tool_name = tool_name_for(self.agent.name)
        if not self.description:
            about = self.agent.description
            self.description = f"Hand the conversation over to {self.agent.name}" + (f": {about}" if about else ".")

    def tool(self) -> Tool:
        """The (argument-less) tool the model calls to hand off."""
        parameters = {"type": "object", "properties": {}, "additionalProperties": False}
        return Tool(self.tool_name, self.description, parameters)

    def filtered(self, messages: list[Message]) -> list[Message]:
        """What the receiver sees of ``messages``."""
        if self.input_filter is None:
            return list(messages)
        kept = self.input_filter(list(messages))
        if not isinstance(kept, list):
            raise InvalidRequestError(
                f"the input filter of the handoff to {self.agent.name!r} returned a {type(kept).__name__}; "
                "it must return a list of messages"
            )
        return kept


def handoff(
    agent: BaseAgent, *, tool_name: str | None = None, description: str | None = None,
    input_filter: InputFilter | None = None,
) -> Handoff:
    """A handoff to ``agent`` with a custom tool name, description or input filter."""
    return Handoff(agent, tool_name or "", description or "", input_filter)


def coerce_handoff(value: Any) -> Handoff:
    from agentadapter.agents.base import BaseAgent

    if isinstance(value, Handoff):
        return value
    if isinstance(value, BaseAgent):
        return Handoff(value)
    raise InvalidRequestError(f"a handoff must be an agent or handoff(agent, ...), not a {type(value).__name__}")


# ------------------------------------------------------------------------------------ input filters


def remove_tool_messages(messages: list[Message]) -> list[Message]:
    """Drop tool calls and tool results, keeping the text of the conversation."""
    kept: list[Message] = []
    for message in messages:
        if message.role == "tool":
            continue
        parts: list[Part] = [p for p in message.parts if not isinstance(p, ToolCallPart | ToolResultPart)]
        if not parts or all(isinstance(p, TextPart) and not p.text for p in parts):
            continue
        kept.append(Message(message.role, parts, name=message.name))
    return kept


def keep_last(count: int) -> InputFilter:
    """A filter keeping the last ``count`` text messages (tool traffic removed first)."""
    if count < 1:
        raise InvalidRequestError("keep_last() needs a count of at least 1")

    def last(messages: list[Message]) -> list[Message]:
        return remove_tool_messages(messages)[-count:]

    return last
