"""The typed events of ``agent.run_stream()``, and the stream object that yields them.

Each event has a ``type`` discriminator: ``text_delta`` (answer text as it arrives),
``tool_call`` / ``tool_result``, ``handoff``, ``guardrail``, ``approval_required``, ``nested`` (an
event of a workflow the agent runs) and, last,
``final`` with the :class:`~agentadapter.agents.result.AgentResult`. The agent's ``execute`` runs
in a task and emits events through its context; :class:`AgentStream` hands them to the consumer in
order and re-raises the run's error, if any, where the consumer iterates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from agentadapter.llm.errors import InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext
    from agentadapter.agents.result import AgentResult, ApprovalRequest

__all__ = [
    "AgentEvent",
    "AgentStream",
    "ApprovalRequiredEvent",
    "FinalEvent",
    "GuardrailEvent",
    "HandoffEvent",
    "NestedRunEvent",
    "TextDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
]


@dataclass(slots=True)
class TextDeltaEvent:
    """New text of the answer being generated."""

    agent: str
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(slots=True)
class ToolCallEvent:
    """A tool call about to run."""

    agent: str
    call_id: str
    name: str
    arguments: dict[str, Any]
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class ToolResultEvent:
    """A tool call's result (or error) going back to the model."""

    agent: str
    call_id: str
    name: str
    content: str
    is_error: bool
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class HandoffEvent:
    """The conversation moves to another agent."""

    from_agent: str
    to_agent: str
    type: Literal["handoff"] = "handoff"


@dataclass(slots=True)
class GuardrailEvent:
    """A guardrail's verdict."""

    agent: str
    name: str
    kind: Literal["input", "output"]
    tripwire_triggered: bool
    info: Any = None
    type: Literal["guardrail"] = "guardrail"


@dataclass(slots=True)
class ApprovalRequiredEvent:
    """The run pauses: these tool calls wait for a human (see ``resume``)."""

    agent: str
    requests: list[ApprovalRequest] = field(default_factory=list)
    type: Literal["approval_required"] = "approval_required"


@dataclass(slots=True)
class NestedRunEvent:
    """An event of a run this agent runs inside its own (a nested workflow), as that run's JSON dict."""

    agent: str
    workflow: str
    event: dict[str, Any]
    type: Literal["nested"] = "nested"


@dataclass(slots=True)
class FinalEvent:
    """The run ended (completed or paused); always the last event."""

    agent: str
    result: AgentResult
    type: Literal["final"] = "final"


AgentEvent: TypeAlias = (
    TextDeltaEvent | ToolCallEvent | ToolResultEvent | HandoffEvent | GuardrailEvent | ApprovalRequiredEvent
    | NestedRunEvent | FinalEvent
)

_DONE = object()


class AgentStream:
    """The events of one run. Iterate it once (``async for``); ``result`` holds the outcome afterwards.

    ``async with agent.run_stream(...) as stream:`` guarantees the run is cancelled if the consumer
    stops early; :meth:`collect` runs to the end and returns the result.
    """

    def __init__(self, context: AgentContext, run: Callable[[AgentContext], Awaitable[AgentResult]]) -> None:
        self.context = context
        self.result: AgentResult | None = None
        self._run = run
        self._task: asyncio.Task[AgentResult] | None = None
        self._started = False

    def __aiter__(self) -> AsyncIterator[AgentEvent]:
        if self._started:
            raise InvalidRequestError("an agent stream can be iterated only once; call run_stream() again")
        self._started = True
        return self._events()

    async def _events(self) -> AsyncIterator[AgentEvent]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.context._shared.sink = queue.put_nowait

        async def run() -> AgentResult:
            try:
                return await self._run(self.context)
            finally:
                queue.put_nowait(_DONE)

        self._task = task = asyncio.create_task(run())
        try:
            while True:
                event = await queue.get()
                if event is _DONE:
                    break
                yield event
            self.result = result = await task
            yield FinalEvent(result.agent, result)
        finally:
            await self.aclose()

    async def collect(self) -> AgentResult:
        """Consume every event and return the result."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

    async def aclose(self) -> None:
        """Cancel the run if it is still going."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> AgentStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
