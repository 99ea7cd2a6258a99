"""Helpers for the orchestrator tests: scripted models, gates that block agents, an orchestrator.

``Models`` is one FunctionBackend serving many scripted models (``fake/<name>``): each model's
behaviour is a function of the request (sync or async) or a fixed answer; unscripted models echo
the last user message. It counts calls per model and records which calls were cancelled, so a test
can assert that an agent was cancelled and made no model call after it. ``Gate`` is an
``asyncio.Event`` an agent's model waits on. Every LLM here is offline and does not retry.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from agentadapter.agents import AgentContext, AgentResult, BaseAgent, LLMAgent
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Part, Request, Response, TextPart, ToolCallPart, Usage
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.orchestrator import InMemoryRunRecorder, Orchestrator, RunOptions, StepPolicy
from agentadapter.testing import FunctionBackend, offline_llm

Behaviour = Callable[[Request], Any] | str | Response


def reply(*parts: Part | str, cost: float | None = None) -> Response:
    """A response with an explicit cost (the catalog has no price for fake models)."""
    built = [TextPart(p) if isinstance(p, str) else p for p in parts]
    finish = "tool_calls" if any(isinstance(p, ToolCallPart) for p in built) else "stop"
    return Response(id="r", provider="fake", model="m", parts=built, finish_reason=finish, usage=Usage(10, 5),
                    cost_usd=cost)


def last_user(request: Request) -> str:
    return next((m.text for m in reversed(request.messages) if m.role == "user"), "")


class Models(FunctionBackend):
    """Scripted models by name; see the module docstring."""

    def __init__(self) -> None:
        self.behaviours: dict[str, list[Behaviour]] = {}
        self.calls: Counter[str] = Counter()
        self.cancelled: list[str] = []
        self.seen: dict[str, list[Request]] = {}
        super().__init__(self._answer, name="fake")

    def on(self, model: str, *behaviours: Behaviour) -> Models:
        """Answer ``model``'s calls with these, in order (the last one repeats)."""
        self.behaviours[model] = list(behaviours)
        return self

    async def _answer(self, request: Request) -> Any:
        model = request.model
        self.calls[model] += 1
        self.seen.setdefault(model, []).append(request)
        queue = self.behaviours.get(model)
        behaviour: Behaviour = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else last_user
        try:
            if isinstance(behaviour, str | Response):
                return behaviour
            answer = behaviour(request)
            if inspect.isawaitable(answer):
                answer = await answer
            return answer
        except asyncio.CancelledError:
            self.cancelled.append(model)
            raise


class Gate:
    """A model behaviour that blocks until ``open()`` and then answers ``text``."""

    def __init__(self, text: str = "released") -> None:
        self.event = asyncio.Event()
        self.text = text
        self.entered = asyncio.Event()

    async def __call__(self, request: Request) -> str:
        self.entered.set()
        await self.event.wait()
        return self.text

    def open(self) -> None:
        self.event.set()


def fails(error: BaseException) -> Callable[[Request], Any]:
    def raise_it(request: Request) -> Any:
        raise error

    return raise_it


@pytest.fixture
def models() -> Models:
    return Models()


@pytest.fixture
def llm(models: Models) -> LLM:
    return offline_llm(backends={"fake": models}, retry=RetryPolicy(max_retries=0))


@pytest.fixture
def recorder() -> InMemoryRunRecorder:
    return InMemoryRunRecorder()


@pytest.fixture
def orchestrator(llm: LLM, recorder: InMemoryRunRecorder) -> Orchestrator:
    # Retries wait no time here, so tests that retry stay fast.
    options = RunOptions(step=StepPolicy(max_retries=1, initial_delay_s=0.0))
    return Orchestrator(llm=llm, recorder=recorder, options=options)


def agent(name: str, **fields: Any) -> LLMAgent:
    """An LLMAgent on the scripted model of the same name."""
    return LLMAgent(name, model=f"fake/{name}", instructions=f"You are {name}.", **fields)


def agents(*names: str) -> list[BaseAgent]:
    return [agent(n) for n in names]


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate()`` holds (no wall-clock waiting)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


class Spender(BaseAgent):
    """A custom agent that costs ``cost_usd`` per step, optionally after waiting at a gate.

    (A scripted model's own ``cost_usd`` does not survive the streamed path, where the cost comes
    from the catalog's prices; a custom agent reports its cost directly.)
    """

    def __init__(self, name: str, cost_usd: float, gate: asyncio.Event | None = None) -> None:
        super().__init__(name)
        self.cost_usd = cost_usd
        self.gate = gate
        self.runs = 0
        self.cancelled = 0

    async def execute(self, context: AgentContext) -> AgentResult:
        self.runs += 1
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return AgentResult(output=f"{self.name}: {context.input_text}", usage=Usage(10, 5), cost_usd=self.cost_usd)
