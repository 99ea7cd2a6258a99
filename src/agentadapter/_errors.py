"""The root of AgentAdapter's exception tree, below every layer so that each can derive from it.

The tree itself is drawn in :mod:`agentadapter.llm.errors`; the protocol's errors
(:mod:`agentadapter.protocol.errors`) hang off the same root without importing the adapter.
"""

from __future__ import annotations


class AgentAdapterError(Exception):
    """The root of every error AgentAdapter raises."""

    retryable: bool = False
