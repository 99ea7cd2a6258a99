"""The agent loop's errors: what stops an agent run (drawn in the one tree, :mod:`agentadapter.errors`).

:class:`GuardrailTripped` is raised when an input or output guardrail's tripwire fires;
:class:`MaxTurnsExceeded` when an agent used every turn without a final answer. Both are raised by
the loop (:mod:`agentadapter.agents._loop`) and exported as ``agentadapter.GuardrailTripped`` and
``agentadapter.MaxTurnsExceeded``. The errors of the built-in tools are in :mod:`.tools.errors`.
"""

from __future__ import annotations

from typing import Any

from agentadapter.errors import AgentAdapterError

__all__ = ["GuardrailTripped", "MaxTurnsExceeded"]


class GuardrailTripped(AgentAdapterError):
    """A guardrail's tripwire stopped an agent run."""

    def __init__(self, message: str, *, guardrail: str | None = None, info: Any = None) -> None:
        super().__init__(message)
        self.guardrail = guardrail
        self.info = info


class MaxTurnsExceeded(AgentAdapterError):
    """An agent used all its turns without a final answer."""
