"""What every framework integration shares: the run a framework call belongs to, and the wrapper agent.

Two directions meet here. A framework's model adapter (a LangChain chat model, an OpenAI Agents SDK
``Model``, an AG2 model client) turns the framework's request into our neutral :class:`Request` and
hands it to :func:`generate` or :func:`stream`, which call ``LLM`` - so routes, failover, budgets, the
usage ledger and telemetry apply - and credit the call to the :class:`FrameworkRun` in progress. A
:class:`FrameworkAgent` (a ``BaseAgent``) starts that run around the framework's own entry point, so
the calls made inside it count toward the agent's result, their tool calls and results become our run
events, and cancelling the agent reaches the framework (its task, or its worker thread at the next
model call). The run travels in a context variable, which asyncio tasks and ``asyncio.to_thread`` copy;
a model adapter used outside any run calls the shared ``LLM()`` directly.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import threading
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.context import AgentContext, default_llm
from agentadapter.agents.events import TextDeltaEvent, ToolCallEvent, ToolResultEvent
from agentadapter.agents.result import AgentResult, ToolCallRecord
from agentadapter.errors import AgentAdapterError, ConfigurationError
from agentadapter.frameworks.errors import FrameworkCancelled, FrameworkError
from agentadapter.llm.messages import Message, Request, Response, StreamEvent, ToolResultPart, Usage

if TYPE_CHECKING:
    from agentadapter.agents.events import AgentEvent
    from agentadapter.llm.client import LLM

__all__ = [
    "FrameworkAgent",
    "FrameworkRun",
    "answer",
    "current_run",
    "generate",
    "generate_sync",
    "require",
    "stream",
    "translate_error",
]

EXTRAS = {
    "langchain": "langchain",
    "langchain_core": "langchain",
    "langgraph": "langchain",
    "agents": "openai-agents",
    "ag2": "ag2",
    "openai": "ag2",
}
"""Which extra installs a framework's top-level module (named in the error when it is missing)."""


def require(module: str, framework: str) -> Any:
    """Import a framework's module, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(module.split(".", 1)[0], framework)
        raise ConfigurationError(
            f"the {framework} integration needs {exc.name!r}, which is not installed: "
            f"pip install 'agentadapter[{extra}]' (from a clone: ./dev setup --all)"
        ) from exc


@dataclass(eq=False)
class FrameworkRun:
    """One run of a framework's agent: the facade its model calls use, and what those calls added up to."""

    agent: str
    llm: LLM
    loop: asyncio.AbstractEventLoop
    emit: Callable[[AgentEvent], None] = lambda event: None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    model_calls: int = 0
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    backend: str | None = None
    model: str | None = None
    streaming: bool = False
    """Someone consumes the run's events: model calls stream, so the answer's text arrives as it is written."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the agent's task is cancelled: a worker thread stops at its next model call."""
    _calls: dict[str, ToolCallRecord] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def credit(self, response: Response) -> None:
        """Count a model call's usage and cost, and surface the tool calls it asked for."""
        with self._lock:
            self.usage = self.usage + response.usage
            self.cost_usd += response.cost_usd or 0.0
            self.model_calls += 1
            self.backend, self.model = response.provider, response.model
            for call in response.tool_calls:
                record = ToolCallRecord(
                    call_id=call.id, name=call.name, arguments=dict(call.arguments), agent=self.agent
                )
                self._calls[call.id] = record
                self.tool_calls.append(record)
                self.publish(ToolCallEvent(self.agent, call.id, call.name, dict(call.arguments)))

    def saw_results(self, messages: list[Message]) -> None:
        """Surface tool results the framework sends back to the model (each once)."""
        with self._lock:
            for message in messages:
                for part in message.parts:
                    if not isinstance(part, ToolResultPart):
                        continue
                    record = self._calls.get(part.call_id)
                    if record is None or record.output or record.outcome == "error":
                        continue
                    record.output = part.content
                    record.outcome = "error" if part.is_error else "ok"
                    self.publish(ToolResultEvent(self.agent, part.call_id, record.name, part.content, part.is_error))

    def publish(self, event: AgentEvent) -> None:
        """Hand an event to the run's consumer on its event loop (a framework may call from a thread)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.emit(event)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.emit, event)


_CURRENT: contextvars.ContextVar[FrameworkRun | None] = contextvars.ContextVar(
    "agentadapter_framework_run", default=None
)


def current_run() -> FrameworkRun | None:
    """The framework run this code is part of (None outside any)."""
    return _CURRENT.get()


def _facade(llm: LLM | None) -> tuple[LLM, FrameworkRun | None]:
    run = _CURRENT.get()
    if llm is not None:
        return llm, run
    return (run.llm if run is not None else default_llm()), run


def _check_cancelled(run: FrameworkRun | None) -> None:
    if run is not None and run.cancelled.is_set():
        raise FrameworkCancelled(f"agent {run.agent!r} was cancelled; its framework's model call is not made")


async def generate(model: str | list[str], request: Request, *, llm: LLM | None = None) -> Response:
    """One answer from ``model`` through ``LLM`` (``llm``, else the run's, else the shared one), credited to the run."""
    facade, run = _facade(llm)
    _check_cancelled(run)
    if run is not None:
        run.saw_results(request.messages)
    response = await facade.generate_request(model, request)
    if run is not None:
        run.credit(response)
    return response


async def stream(model: str | list[str], request: Request, *, llm: LLM | None = None) -> AsyncIterator[StreamEvent]:
    """The answer as our stream events; text deltas also reach the run's consumer; the last event carries the
    whole response (``finish``), which is credited to the run."""
    facade, run = _facade(llm)
    _check_cancelled(run)
    if run is not None:
        run.saw_results(request.messages)
    async for event in facade.stream_request(model, request):
        if run is not None and event.kind == "text" and event.text:
            run.publish(TextDeltaEvent(run.agent, event.text))
        if event.kind == "finish" and event.response is not None and run is not None:
            run.credit(event.response)
        yield event


async def answer(model: str | list[str], request: Request, *, llm: LLM | None = None) -> Response:
    """:func:`generate`, streamed when the run is (its text then reaches the consumer as it is written)."""
    run = _CURRENT.get()
    if run is None or not run.streaming:
        return await generate(model, request, llm=llm)
    response: Response | None = None
    async for event in stream(model, request, llm=llm):
        if event.kind == "finish":
            response = event.response
    assert response is not None, "a stream ends with its finish event"
    return response


def generate_sync(model: str | list[str], request: Request, *, llm: LLM | None = None) -> Response:
    """:func:`generate` for a framework's synchronous code (a worker thread, or no event loop at all).

    Inside a run, the call goes to the run's event loop, where the facade's pooled clients live; outside
    any, to the facade's background loop.
    """
    facade, run = _facade(llm)
    _check_cancelled(run)
    if run is not None and not run.loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is run.loop:
            raise FrameworkError(
                f"agent {run.agent!r}: a synchronous model call was made on the run's event "
                "loop, which it would block; call the framework's async entry point instead"
            )
        future = asyncio.run_coroutine_threadsafe(generate(model, request, llm=llm), run.loop)
        while True:
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                if run.cancelled.is_set():
                    future.cancel()
                    _check_cancelled(run)
    return facade.run_sync(generate(model, request, llm=facade))


def translate_error(error: BaseException, framework: str, agent: str) -> AgentAdapterError:
    """Our error for a framework's failure: ours when one of ours is in its chain, else a FrameworkError."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, AgentAdapterError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return FrameworkError(
        f"the {framework} agent {agent!r} failed: {type(error).__name__}: {error}", framework=framework, agent=agent
    )


class FrameworkAgent(BaseAgent):
    """An agent of another framework, run as ours: its model calls, tools and cost count in our run."""

    framework: ClassVar[str] = "framework"
    """The framework's name, as a workflow's ``framework:`` says it."""
    agent_type: ClassVar[str] = "framework"

    def __init__(
        self,
        target: Any,
        *,
        name: str | None = None,
        llm: LLM | None = None,
        input_map: Callable[[AgentContext], Any] | None = None,
        output_map: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(name)
        self.target = target
        """The framework's object (a runnable, a graph, an agent, ...)."""
        self.llm = llm
        """The facade its model calls use (default: the run's ``RunConfig.llm``, else the shared one)."""
        self.input_map = input_map
        """What the framework is given, from our context (default: :meth:`framework_input`)."""
        self.output_map = output_map
        """Our output, from what the framework returned (default: :meth:`framework_output`)."""

    @property
    def description(self) -> str:
        return getattr(self.target, "description", None) or super().description

    @abstractmethod
    def framework_input(self, context: AgentContext) -> Any:
        """The framework's input for this context (history and input as the framework's messages, or text)."""

    @abstractmethod
    async def invoke(self, value: Any, context: AgentContext) -> Any:
        """Run the framework's object on ``value`` and return what it returned."""

    @abstractmethod
    def framework_output(self, value: Any) -> Any:
        """Our output (usually text) from the framework's return value."""

    async def execute(self, context: AgentContext) -> AgentResult:
        """Run the framework inside a :class:`FrameworkRun`; map input, output and errors; total usage and cost."""
        run = FrameworkRun(
            agent=self.name,
            llm=self.llm or context.llm,
            loop=asyncio.get_running_loop(),
            emit=context.emit,
            streaming=context.streaming,
        )
        token = _CURRENT.set(run)
        try:
            value = self.input_map(context) if self.input_map is not None else self.framework_input(context)
            returned = await self.invoke(value, context)
            output = self.output_map(returned) if self.output_map is not None else self.framework_output(returned)
        except asyncio.CancelledError:
            run.cancelled.set()  # a worker thread of the framework stops at its next model call
            raise
        except Exception as exc:
            error = translate_error(exc, self.framework, self.name)
            if error is exc:
                raise
            if isinstance(error, FrameworkError) and error.__cause__ is None and error.__traceback__ is None:
                raise error from exc  # a new error for the framework's own failure
            raise error from None  # ours, from inside the framework: as it was raised (the wrapper's noise dropped)
        finally:
            _CURRENT.reset(token)
        text = output if isinstance(output, str) else _text(output)
        return AgentResult(
            output=output,
            text=text,
            agent=self.name,
            run_id=context.run_id,
            messages=[*context.history, *context.messages, Message.assistant(text)],
            new_messages_start=len(context.history) + len(context.messages),
            tool_calls=list(run.tool_calls),
            usage=run.usage,
            cost_usd=run.cost_usd,
            backend=run.backend,
            model=run.model,
            turns=run.model_calls,
        )


def _text(value: Any) -> str:
    import json

    from agentadapter.agents.result import to_jsonable

    try:
        return json.dumps(to_jsonable(value))
    except (TypeError, ValueError):
        return str(value)
