"""Subjects: what an experiment runs each case against (an agent, a workflow, a model or route).

Every subject answers a case's input with a :class:`SubjectOutput`: the output and its text, the tool
calls made, tokens, cost and wall time, or the error that stopped it. A failing subject is a result,
not a crash: the error is kept (its type and message) and the experiment goes on. :func:`coerce_subject`
accepts an agent, a :class:`~agentadapter.orchestrator.workflow.Workflow`, a model id or alias, or a
subject, so ``run_experiment(dataset, [agent, "openai/gpt-4o-mini"])`` reads as it should.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.result import to_jsonable
from agentadapter.agents.run_config import RunConfig
from agentadapter.errors import InvalidRequestError
from agentadapter.llm.messages import Usage
from agentadapter.orchestrator import Orchestrator, RunOptions
from agentadapter.orchestrator.workflow import Workflow

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM
    from agentadapter.orchestrator.strategies import Strategy

__all__ = [
    "AgentSubject",
    "ModelSubject",
    "Subject",
    "SubjectOutput",
    "WorkflowSubject",
    "coerce_subject",
]


@dataclass(slots=True)
class SubjectOutput:
    """One answer of a subject to one case."""

    output: Any = None
    """The answer (text, or a typed object)."""
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """``{"name", "arguments"}`` of every tool call made, in order."""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None
    """``Type: message`` when the subject failed."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Subject(ABC):
    """Something that answers a case's input; ``name`` is how results and tables refer to it."""

    name: str

    @abstractmethod
    async def answer(self, input: Any, llm: LLM | None) -> SubjectOutput:
        """Answer ``input`` (errors come back in ``SubjectOutput.error``, they are not raised)."""

    @property
    def kind(self) -> str:
        return type(self).__name__.removesuffix("Subject").lower()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}


class AgentSubject(Subject):
    """An agent (any :class:`~agentadapter.agents.base.BaseAgent`): one run per case."""

    def __init__(self, agent: BaseAgent, name: str | None = None, *, max_cost_usd: float | None = None) -> None:
        self.agent = agent
        self.name = name or agent.name
        self.max_cost_usd = max_cost_usd

    async def answer(self, input: Any, llm: LLM | None) -> SubjectOutput:
        started = time.perf_counter()
        try:
            result = await self.agent.run(input, RunConfig(llm=llm, max_cost_usd=self.max_cost_usd, tracing=False))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            partial = getattr(exc, "result", None)
            return SubjectOutput(error=_error_text(exc), latency_ms=(time.perf_counter() - started) * 1000.0,
                                 usage=getattr(partial, "usage", None) or Usage(),
                                 cost_usd=float(getattr(partial, "cost_usd", 0.0) or 0.0))
        return SubjectOutput(
            output=to_jsonable(result.output), text=result.text,
            tool_calls=[{"name": c.name, "arguments": to_jsonable(c.arguments)} for c in result.tool_calls],
            usage=result.usage, cost_usd=result.cost_usd, latency_ms=(time.perf_counter() - started) * 1000.0,
            error=None if result.status == "completed" else f"the run ended {result.status}",
        )


class WorkflowSubject(Subject):
    """Agents under a strategy (a workflow): one orchestrated run per case."""

    def __init__(self, agents: Mapping[str, BaseAgent] | Sequence[BaseAgent], strategy: Strategy | str = "sequential",
                 *, name: str = "workflow", options: RunOptions | None = None) -> None:
        self.agents = agents
        self.strategy = strategy
        self.name = name
        self.options = options

    @classmethod
    def of(cls, workflow: Workflow, name: str | None = None) -> WorkflowSubject:
        return cls(workflow.agents, workflow.strategy, name=name or workflow.name, options=workflow.options)

    async def answer(self, input: Any, llm: LLM | None) -> SubjectOutput:
        started = time.perf_counter()
        try:
            result = await Orchestrator(llm=llm).run(input, self.agents, self.strategy, options=self.options)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return SubjectOutput(error=_error_text(exc), latency_ms=(time.perf_counter() - started) * 1000.0)
        error = None
        if result.status != "completed":
            detail = result.error or {}
            error = f"{detail.get('type', 'RunFailed')}: {detail.get('message', 'the run ended ' + result.status)}"
        return SubjectOutput(output=to_jsonable(result.output), text=result.text, usage=result.usage,
                             cost_usd=result.cost_usd, latency_ms=(time.perf_counter() - started) * 1000.0, error=error)


class ModelSubject(Subject):
    """A model, alias or route called directly: the case's input (with ``instructions`` as the system prompt)."""

    def __init__(self, model: str, name: str | None = None, *, instructions: str = "",
                 settings: Mapping[str, Any] | None = None) -> None:
        if not model or not isinstance(model, str):
            raise InvalidRequestError("a model subject needs a model id (provider/model) or an alias")
        self.model = model
        self.name = name or model
        self.instructions = instructions
        self.settings = dict(settings or {})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "model": self.model}

    async def answer(self, input: Any, llm: LLM | None) -> SubjectOutput:
        if llm is None:
            raise InvalidRequestError(f"model subject {self.name!r} needs an LLM: pass llm= to the experiment")
        messages: list[Any] = [{"role": "system", "content": self.instructions}] if self.instructions else []
        messages.extend([{"role": "user", "content": input}] if isinstance(input, str) else input)
        started = time.perf_counter()
        try:
            response = await llm.generate(self.model, messages, **self.settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return SubjectOutput(error=_error_text(exc), latency_ms=(time.perf_counter() - started) * 1000.0)
        output = response.output if response.output is not None else response.text
        return SubjectOutput(
            output=to_jsonable(output), text=response.text,
            tool_calls=[{"name": c.name, "arguments": to_jsonable(c.arguments)} for c in response.tool_calls],
            usage=response.usage, cost_usd=response.cost_usd or 0.0,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )


def coerce_subject(value: Subject | BaseAgent | Workflow | str) -> Subject:
    """A subject from an agent, a workflow, a model id (or alias), or a subject."""
    if isinstance(value, Subject):
        return value
    if isinstance(value, BaseAgent):
        return AgentSubject(value)
    if isinstance(value, Workflow):
        return WorkflowSubject.of(value)
    if isinstance(value, str):
        return ModelSubject(value)
    raise InvalidRequestError(f"a subject is an agent, a workflow, a model id or a Subject, not {type(value).__name__}")
