"""The OpenAI Agents SDK on our adapter: a ``Model`` and ``ModelProvider`` backed by ``LLM``, and its agents as ours.

:class:`AgentAdapterModel` answers the SDK's model calls through ``LLM``, so an SDK agent runs on any
provider, local model or route of ours with our budgets, usage ledger and telemetry. It speaks the
SDK's Chat Completions shape (the SDK's own converter turns its input items, tools, handoffs and output
schema into messages, and our answer back into its output items); streaming replays our stream events
as chat-completion chunks through the SDK's stream handler. :class:`AgentAdapterModelProvider` maps
any model name (an SDK ``Agent``'s ``model="openai/gpt-4o-mini"``, ``"smart"``, ...) to such a model.
:class:`OpenAIAgentsAgent` runs an SDK ``Agent`` with ``Runner.run`` on that provider as our agent:
it is given the conversation as the SDK's input items and answers with ``final_output``. Needs the
``openai-agents`` extra. The SDK's package is named ``agents``, a name projects often give their own
package, so it is imported on first use (never when this module is), and a shadowing ``agents`` is
reported as such.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any, ClassVar

from agentadapter.agents.context import AgentContext
from agentadapter.errors import ConfigurationError
from agentadapter.frameworks import common
from agentadapter.frameworks.common import FrameworkAgent, require
from agentadapter.llm.messages import Request, Response, StreamEvent, TextPart, coerce_messages
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import coerce_tool

__all__ = ["OpenAIAgentsAgent", "sdk"]  # and AgentAdapterModel, AgentAdapterModelProvider (module __getattr__)


@functools.cache
def sdk() -> SimpleNamespace:
    """The SDK's names this module uses, and our Model and ModelProvider classes built on them."""
    agents = require("agents", "openai-agents")
    if not hasattr(agents, "Runner"):
        raise ConfigurationError(
            f"the module named 'agents' found first ({getattr(agents, '__file__', '?')}) is not the OpenAI Agents "
            "SDK but shadows it; rename that package, or put the SDK's site-packages first on sys.path"
        )
    from agents.models.chatcmpl_converter import Converter
    from agents.models.chatcmpl_stream_handler import ChatCmplStreamHandler
    from agents.usage import Usage as SDKUsage
    from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage, ChatCompletionMessageFunctionToolCall
    from openai.types.chat import chat_completion_chunk as chunks
    from openai.types.chat.chat_completion_message_function_tool_call import Function
    from openai.types.completion_usage import CompletionUsage
    from openai.types.responses import Response as OpenAIResponse

    names = SimpleNamespace(
        Agent=agents.Agent,
        RunConfig=agents.RunConfig,
        Runner=agents.Runner,
        ModelResponse=agents.ModelResponse,
        Converter=Converter,
        StreamHandler=ChatCmplStreamHandler,
        Usage=SDKUsage,
        Chunk=ChatCompletionChunk,
        Choice=chunks.Choice,
        Delta=chunks.ChoiceDelta,
        DeltaToolCall=chunks.ChoiceDeltaToolCall,
        DeltaFunction=chunks.ChoiceDeltaToolCallFunction,
        Message=ChatCompletionMessage,
        ToolCall=ChatCompletionMessageFunctionToolCall,
        Function=Function,
        CompletionUsage=CompletionUsage,
        OpenAIResponse=OpenAIResponse,
    )
    names.Model = _model_class(agents.Model, names)
    names.ModelProvider = _provider_class(agents.ModelProvider, names.Model)
    return names


def _model_class(base: type, names: SimpleNamespace) -> type:
    class AgentAdapterModel(base):  # type: ignore[misc]  # the SDK's Model, imported on first use
        """An OpenAI Agents SDK model whose every call goes through agentadapter's ``LLM``."""

        def __init__(self, model: str | list[str], *, llm: Any = None) -> None:
            self.model = model
            """Our model id, alias or route."""
            self.llm = llm
            """An ``agentadapter.LLM`` (None: the run's, else the shared one)."""

        def _request(
            self,
            system_instructions: str | None,
            input: Any,
            model_settings: Any,
            tools: list[Any],
            output_schema: Any,
            handoffs: list[Any],
        ) -> Request:
            converter = names.Converter
            messages: list[Any] = list(converter.items_to_messages(input))
            if system_instructions:
                messages.insert(0, {"role": "system", "content": system_instructions})
            wire_tools = [converter.tool_to_openai(tool) for tool in tools]
            wire_tools += [converter.convert_handoff_tool(handoff) for handoff in handoffs]
            choice = model_settings.tool_choice
            output = None
            if output_schema is not None and not output_schema.is_plain_text():
                output = OutputSchema.of(output_schema.json_schema())
            return Request(
                model="",
                messages=coerce_messages(_plain(messages)),
                tools=[coerce_tool(_plain(tool)) for tool in wire_tools],
                tool_choice=choice if isinstance(choice, str) else None,
                parallel_tool_calls=model_settings.parallel_tool_calls,
                output=output,
                temperature=model_settings.temperature,
                top_p=model_settings.top_p,
                max_tokens=model_settings.max_tokens,
            )

        async def get_response(
            self,
            system_instructions: str | None,
            input: Any,
            model_settings: Any,
            tools: list[Any],
            output_schema: Any,
            handoffs: list[Any],
            tracing: Any,
            **options: Any,
        ) -> Any:
            request = self._request(system_instructions, input, model_settings, tools, output_schema, handoffs)
            response = await common.generate(self.model, request, llm=self.llm)
            return names.ModelResponse(
                output=names.Converter.message_to_output_items(_message(response, names)),
                usage=_usage(response, names),
                response_id=None,
            )

        async def stream_response(
            self,
            system_instructions: str | None,
            input: Any,
            model_settings: Any,
            tools: list[Any],
            output_schema: Any,
            handoffs: list[Any],
            tracing: Any,
            **options: Any,
        ) -> AsyncIterator[Any]:
            request = self._request(system_instructions, input, model_settings, tools, output_schema, handoffs)
            model = _name(self.model)
            shell = names.OpenAIResponse(
                id="agentadapter",
                created_at=time.time(),
                model=model,
                object="response",
                output=[],
                tool_choice="auto",
                tools=[],
                parallel_tool_calls=False,
            )
            chunks = _chunks(common.stream(self.model, request, llm=self.llm), model, names)
            async for event in names.StreamHandler.handle_stream(shell, chunks):
                yield event

    return AgentAdapterModel


def _provider_class(base: type, model_class: type) -> type:
    class AgentAdapterModelProvider(base):  # type: ignore[misc]  # the SDK's ModelProvider
        """Every model name the SDK asks for, as an ``AgentAdapterModel`` (``default_model`` when it names none)."""

        def __init__(self, default_model: str | None = None, *, llm: Any = None) -> None:
            self.default_model = default_model
            self.llm = llm

        def get_model(self, model_name: str | None) -> Any:
            name = model_name or self.default_model
            if not name:
                raise ConfigurationError(
                    "this OpenAI Agents SDK agent names no model; give it "
                    "model='provider/model' or give the provider a default_model"
                )
            return model_class(name, llm=self.llm)

    return AgentAdapterModelProvider


def __getattr__(name: str) -> Any:
    """``AgentAdapterModel`` and ``AgentAdapterModelProvider``, built on the SDK on first use."""
    if name in ("AgentAdapterModel", "AgentAdapterModelProvider"):
        return getattr(sdk(), name.removeprefix("AgentAdapter"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _name(model: str | list[str]) -> str:
    return model if isinstance(model, str) else model[0]


def _plain(value: Any) -> Any:
    """The SDK's typed dicts and pydantic objects as plain JSON-like data."""
    return json.loads(json.dumps(value, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o)))


def _message(response: Response, names: SimpleNamespace) -> Any:
    calls = [
        names.ToolCall(
            id=c.id, type="function", function=names.Function(name=c.name, arguments=json.dumps(c.arguments))
        )
        for c in response.tool_calls
    ]
    text = "".join(p.text for p in response.parts if isinstance(p, TextPart))
    return names.Message(role="assistant", content=text or None, tool_calls=calls or None)


def _usage(response: Response, names: SimpleNamespace) -> Any:
    usage = response.usage
    return names.Usage(
        requests=1,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.input_tokens + usage.output_tokens,
    )


async def _chunks(events: AsyncIterator[StreamEvent], model: str, names: SimpleNamespace) -> AsyncIterator[Any]:
    """Our stream events as the chat-completion chunks the SDK's stream handler reads."""
    created = int(time.time())

    def chunk(delta: Any, finish: Any = None, usage: Any = None) -> Any:
        return names.Chunk(
            id="agentadapter",
            created=created,
            model=model,
            object="chat.completion.chunk",
            choices=[names.Choice(index=0, delta=delta, finish_reason=finish)],
            usage=usage,
        )

    async for event in events:
        if event.kind == "text" and event.text:
            yield chunk(names.Delta(content=event.text))
        elif event.kind == "tool_call" and event.tool_call is not None:
            call = event.tool_call
            yield chunk(
                names.Delta(
                    tool_calls=[
                        names.DeltaToolCall(
                            index=event.index,
                            id=call.id,
                            type="function",
                            function=names.DeltaFunction(name=call.name, arguments=json.dumps(call.arguments)),
                        )
                    ]
                )
            )
        elif event.kind == "finish" and event.response is not None:
            usage = event.response.usage
            finish = "tool_calls" if event.response.tool_calls else "stop"
            yield chunk(
                names.Delta(),
                finish,
                names.CompletionUsage(
                    prompt_tokens=usage.input_tokens,
                    completion_tokens=usage.output_tokens,
                    total_tokens=usage.input_tokens + usage.output_tokens,
                ),
            )


class OpenAIAgentsAgent(FrameworkAgent):
    """An OpenAI Agents SDK ``Agent`` run as our agent, on our models (``Runner.run`` with our provider)."""

    framework: ClassVar[str] = "openai-agents"

    def __init__(
        self,
        target: Any,
        *,
        name: str | None = None,
        llm: Any = None,
        default_model: str | None = None,
        max_turns: int = 10,
        input_map: Callable[[AgentContext], Any] | None = None,
        output_map: Callable[[Any], Any] | None = None,
    ) -> None:
        if not isinstance(target, sdk().Agent):
            raise TypeError(f"an openai-agents agent wraps an agents.Agent, not a {type(target).__name__}")
        super().__init__(target, name=name or target.name, llm=llm, input_map=input_map, output_map=output_map)
        self.default_model = default_model
        """The model of SDK agents that name none (handoff targets included)."""
        self.max_turns = max_turns

    def framework_input(self, context: AgentContext) -> Any:
        items: list[dict[str, Any]] = []
        for message in [*context.history, *context.messages]:
            if message.role in ("user", "assistant", "system") and message.text:
                items.append({"role": message.role, "content": message.text})
        return items or context.input_text

    async def invoke(self, value: Any, context: AgentContext) -> Any:
        names = sdk()
        provider = names.ModelProvider(self.default_model, llm=self.llm or context.llm)
        config = names.RunConfig(model_provider=provider, tracing_disabled=True, workflow_name=self.name)
        if not context.streaming:
            return await names.Runner.run(self.target, value, run_config=config, max_turns=self.max_turns)
        # Someone streams the run: the SDK streams too, so the answer's text arrives as it is written.
        streamed = names.Runner.run_streamed(self.target, value, run_config=config, max_turns=self.max_turns)
        try:
            async for _ in streamed.stream_events():
                pass
        except BaseException:
            streamed.cancel()
            raise
        return streamed

    def framework_output(self, value: Any) -> Any:
        return getattr(value, "final_output", value)
