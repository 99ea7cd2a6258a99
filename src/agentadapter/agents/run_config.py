"""Two small settings objects: :class:`ModelSettings` (per agent) and :class:`RunConfig` (per run).

``ModelSettings`` holds the generation settings an agent passes to every model call (the keyword
settings of :meth:`agentadapter.llm.client.LLM.generate`). ``RunConfig`` holds what belongs to one
run rather than to an agent: the facade to call, the turn limit, the cost cap, the default tool
timeout, how many times a bad structured answer may be repaired, and the protocol to talk through.
Both exist so that neither ``run()`` nor an agent's constructor grows twenty keyword arguments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from agentadapter.llm.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM
    from agentadapter.protocol.protocol import CommunicationProtocol

__all__ = ["ModelSettings", "RunConfig"]


@dataclass(slots=True)
class ModelSettings:
    """Generation settings sent with every model call of an agent; None leaves the provider's default."""

    temperature: float | None = None
    """Sampling temperature."""
    top_p: float | None = None
    """Nucleus sampling."""
    max_tokens: int | None = None
    """Upper bound on the answer's tokens, per call."""
    stop: list[str] | None = None
    """Stop sequences."""
    seed: int | None = None
    """Sampling seed, where the provider supports one."""
    reasoning_effort: str | None = None
    """``minimal`` / ``low`` / ``medium`` / ``high`` for reasoning models."""
    tool_choice: str | None = None
    """``auto``, ``none``, ``required`` or a tool name (the loop forces ``required`` for an output tool)."""
    parallel_tool_calls: bool | None = None
    """Whether the model may ask for several tool calls in one turn."""
    timeout: float | None = None
    """Seconds per model call (retries and failover included)."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Request metadata (sent where the provider stores it)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for our own usage records."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Provider-specific body fields."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    """Provider-specific headers."""

    @classmethod
    def of(cls, value: ModelSettings | Mapping[str, Any] | None) -> ModelSettings:
        """Accept a ``ModelSettings``, a dict of the same keys (from a spec), or None."""
        if value is None:
            return cls()
        if isinstance(value, ModelSettings):
            return value
        if not isinstance(value, Mapping):
            raise InvalidRequestError(
                f"model_settings takes a ModelSettings or a dict, not {type(value).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidRequestError(
                f"unknown model setting(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))} "
                "(provider-specific fields go in extra_body)"
            )
        data = dict(value)
        if isinstance(data.get("stop"), str):
            data["stop"] = [data["stop"]]
        return cls(**data)

    def to_kwargs(self) -> dict[str, Any]:
        """The settings that are set, as keyword arguments for ``LLM.request``."""
        kwargs: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is not None and value != {}:
                kwargs[spec.name] = value
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return self.to_kwargs()


class RunResources:
    """Things opened once for a whole run and closed at its end: ``await get(key, open, close)`` gives the one
    object under ``key`` (opening it on first use), and :meth:`aclose` closes them all, newest first."""

    def __init__(self) -> None:
        self._items: dict[Any, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._lock = asyncio.Lock()

    async def get(self, key: Any, open: Callable[[], Awaitable[Any]], close: Callable[[Any], Awaitable[None]]) -> Any:
        async with self._lock:  # two agents of a parallel group asking at once get the same one
            if key not in self._items:
                item = await open()
                self._items[key] = item
                self._closers.append(lambda: close(item))
            return self._items[key]

    async def aclose(self) -> None:
        """Close everything (errors are logged and the rest still closed)."""
        closers, self._closers, self._items = self._closers, [], {}
        for closer in reversed(closers):
            try:
                await closer()
            except Exception:
                logging.getLogger("agentadapter.agents").warning("closing a run resource failed", exc_info=True)


@dataclass(slots=True)
class RunConfig:
    """How one run goes. Every field has a default; pass only what you change."""

    llm: LLM | None = None
    """The facade every model call goes through; None: one shared ``LLM()`` (environment + agentadapter.yaml)."""
    max_turns: int | None = None
    """Model calls allowed in the run, handoffs included; None: the starting agent's ``max_turns``."""
    max_cost_usd: float | None = None
    """Cost cap for the run; checked before each model call (the call that crosses it completes)."""
    tool_timeout: float | None = 120.0
    """Seconds a tool may run when the tool sets no timeout of its own; None: no limit."""
    max_output_repairs: int = 2
    """How many times an answer that fails the output schema goes back to the model before failing."""
    max_parallel_tools: int | None = None
    """At most this many tool calls of one turn run at once; None: all of them."""
    run_id: str | None = None
    """The run's id (a new one if None); it is also the trace id and the protocol's namespace."""
    protocol: CommunicationProtocol | None = None
    """The protocol agents talk through; None: an in-process one created when first used."""
    tracing: bool = True
    """False keeps this run out of the trace processors."""
    resources: RunResources | None = None
    """What the agents of one orchestrated run share and the run closes at its end (MCP connections);
    None: each agent run keeps its own."""

    def __post_init__(self) -> None:
        if self.max_turns is not None and self.max_turns < 1:
            raise InvalidRequestError("RunConfig.max_turns must be at least 1")
        if self.max_cost_usd is not None and self.max_cost_usd <= 0:
            raise InvalidRequestError("RunConfig.max_cost_usd must be a positive number of USD")
        if self.tool_timeout is not None and self.tool_timeout <= 0:
            raise InvalidRequestError("RunConfig.tool_timeout must be a positive number of seconds (or None)")
        if self.max_output_repairs < 0:
            raise InvalidRequestError("RunConfig.max_output_repairs must be 0 or more")
        if self.max_parallel_tools is not None and self.max_parallel_tools < 1:
            raise InvalidRequestError("RunConfig.max_parallel_tools must be at least 1 (or None)")
