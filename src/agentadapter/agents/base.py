"""``BaseAgent``: the contract every agent keeps, whatever runs it.

An agent has a ``name``, a class-level ``agent_type`` and ``CAPABILITIES``, a description (its
docstring), and ``async execute(context) -> AgentResult``. The orchestrator calls ``execute`` with a
context it built; :meth:`BaseAgent.run`, :meth:`BaseAgent.run_sync` and :meth:`BaseAgent.run_stream`
are the conveniences a user calls, which build the context (and close an on-demand protocol
afterwards). A custom agent subclasses ``BaseAgent`` and writes ``execute``; the model-driven agents
(:class:`~agentadapter.agents.llm_agent.LLMAgent` and its online and local bindings) are subclasses
too, so the loader, the factory and the orchestrator treat them all alike.
"""

from __future__ import annotations

import inspect
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from agentadapter.agents import metrics, tracing
from agentadapter.agents.context import AgentContext, AgentInput
from agentadapter.agents.events import AgentStream
from agentadapter.agents.result import AgentResult
from agentadapter.agents.run_config import RunConfig
from agentadapter.llm.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.agents.tools.decorator import FunctionTool
    from agentadapter.llm.messages import Message

__all__ = ["AgentMetadata", "BaseAgent", "describe"]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def describe(cls: type) -> str:
    """The first paragraph of a class's own docstring ("" when it has none)."""
    doc = cls.__dict__.get("__doc__")
    if not doc or doc.startswith(f"{cls.__name__}("):  # @dataclass writes its signature when there is none
        return ""
    return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ").strip()


@dataclass(slots=True, frozen=True)
class AgentMetadata:
    """What the loader and the registry know of an agent class without running it."""

    name: str
    agent_type: str
    capabilities: tuple[str, ...]
    description: str
    module: str
    qualname: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agent_type": self.agent_type,
            "capabilities": list(self.capabilities),
            "description": self.description,
            "module": self.module,
            "qualname": self.qualname,
        }


class BaseAgent(ABC):
    """An agent: something that takes a context and returns an AgentResult."""

    CAPABILITIES: ClassVar[Sequence[str]] = ()
    """What this kind of agent can do (``"research"``, ``"review"``, ...): the registry searches it."""
    agent_type: ClassVar[str] = "custom"
    """The kind of agent (``llm``, ``online``, ``local``, or a custom type's name)."""
    _traces_itself: ClassVar[bool] = False
    """True when ``execute`` opens its own agent span and records its own metrics (the LLM loop)."""

    name: str

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.default_name()

    @classmethod
    def default_name(cls) -> str:
        """The class's ``name`` attribute when it sets one, else its class name in snake_case."""
        declared = cls.__dict__.get("name")
        return declared if isinstance(declared, str) and declared else _snake(cls.__name__)

    @property
    def description(self) -> str:
        """The first paragraph of the class docstring."""
        return describe(type(self))

    @property
    def capabilities(self) -> Sequence[str]:
        return tuple(type(self).CAPABILITIES)

    @classmethod
    def metadata(cls) -> AgentMetadata:
        """Name, type, capabilities and description, read from the class alone."""
        return AgentMetadata(
            name=cls.default_name(),
            agent_type=cls.agent_type,
            capabilities=tuple(cls.CAPABILITIES),
            description=describe(cls),
            module=cls.__module__,
            qualname=cls.__qualname__,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ------------------------------------------------------------------------------- the contract

    @abstractmethod
    async def execute(self, context: AgentContext) -> AgentResult:
        """Do the work for ``context`` and return the result."""

    # --------------------------------------------------------------------------- the conveniences

    def make_context(
        self, input: AgentInput = "", config: RunConfig | None = None, *, deps: Any = None,
        history: Sequence[Message] | None = None,
    ) -> AgentContext:
        """A fresh context for a run of this agent."""
        config = config if config is not None else RunConfig()
        return AgentContext(self, input=input, config=config, deps=deps, history=list(history or ()))

    async def run(
        self, input: AgentInput, config: RunConfig | None = None, *, deps: Any = None,
        history: Sequence[Message] | None = None,
    ) -> AgentResult:
        """Run the agent on ``input`` (a string, a message, or a list of messages) and return the result."""
        return await self._run_with_context(self.make_context(input, config, deps=deps, history=history))

    def run_sync(
        self, input: AgentInput, config: RunConfig | None = None, *, deps: Any = None,
        history: Sequence[Message] | None = None,
    ) -> AgentResult:
        """``run`` for code that is not async (runs on the LLM's background event loop)."""
        context = self.make_context(input, config, deps=deps, history=history)
        return context.llm.run_sync(self._run_with_context(context))

    def run_stream(
        self, input: AgentInput, config: RunConfig | None = None, *, deps: Any = None,
        history: Sequence[Message] | None = None,
    ) -> AgentStream:
        """Run the agent, yielding typed events as they happen; ``stream.result`` afterwards."""
        return AgentStream(self.make_context(input, config, deps=deps, history=history), self._run_with_context)

    async def _run_with_context(self, context: AgentContext) -> AgentResult:
        try:
            if self._traces_itself:
                return await self.execute(context)
            return await self._execute_traced(context)
        finally:
            await context.aclose()

    async def _execute_traced(self, context: AgentContext) -> AgentResult:
        """``execute`` inside an agent span, with run metrics (for agents whose execute does neither)."""
        started = time.perf_counter()
        status = "failed"
        span = tracing.agent_span(self.name, self.agent_type, trace_id=context.run_id,
                                  enabled=context.config.tracing)
        with span:
            try:
                result = await self.execute(context)
            except Exception:
                raise
            else:
                if not isinstance(result, AgentResult):
                    raise InvalidRequestError(
                        f"agent {self.name!r} ({type(self).__qualname__}).execute returned a "
                        f"{type(result).__name__}; it must return an AgentResult"
                    )
                if not result.run_id:
                    result.run_id = context.run_id
                if not result.agent:
                    result.agent = self.name
                if not result.latency_ms:
                    result.latency_ms = (time.perf_counter() - started) * 1000.0
                status = result.status
                return result
            finally:
                if span.recording:
                    span.data.status = status
                metrics.record_run(self.agent_type, status, time.perf_counter() - started)

    # ------------------------------------------------------------------------------- composition

    def as_tool(self, name: str | None = None, description: str | None = None) -> FunctionTool:
        """This agent as a tool another agent's model can call with a text ``input``.

        The sub-run shares the caller's run (protocol, deps) and its usage and cost count toward it.
        """
        from agentadapter.agents.tools.decorator import FunctionTool

        agent = self

        async def run_agent(context: AgentContext, input: str) -> str:
            result = await context.run_agent(agent, input)
            return result.text

        tool_name = name or re.sub(r"[^A-Za-z0-9_-]+", "_", self.name)[:64] or "agent"
        return FunctionTool.wrap(
            run_agent, name=tool_name,
            description=description or self.description or f"Ask the {self.name} agent; give it the whole request.",
        )
