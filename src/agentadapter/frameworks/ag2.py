"""AG2 on our adapter: a model config and client backed by ``LLM``, and AG2 agents as ours.

AG2 (the ``ag2`` package, version 1) asks a model through a ``ModelConfig`` whose ``create()`` makes an
``LLMClient``. :class:`AgentAdapterConfig` is such a config: its client turns AG2's conversation events
and tool schemas into our neutral request (with AG2's own Chat Completions mappers) and answers through
``LLM`` - any provider, local model or route of ours, with budgets, the usage ledger and telemetry -
publishing the answer on AG2's stream as its own clients do. :class:`AG2Agent` runs an ``ag2.Agent`` as
our agent: it asks it the step's input text and answers with the reply's content; given
``default_model``, the ask runs on our model whatever config the agent was built with. Needs the
``ag2`` extra; this module imports AG2, so it is imported only when used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Self

from ag2 import Agent
from ag2.config import ModelProvider
from ag2.config.openai.mappers import convert_messages, response_proto_to_schema, tool_to_api
from ag2.events import BaseEvent, ModelMessage, ModelResponse, ToolCallEvent, ToolCallsEvent
from ag2.events.types import Usage as AG2Usage

from agentadapter.agents.context import AgentContext
from agentadapter.frameworks import common
from agentadapter.frameworks.common import FrameworkAgent
from agentadapter.llm.messages import Request, Response, coerce_messages
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import coerce_tool

__all__ = ["AG2Agent", "AgentAdapterClient", "AgentAdapterConfig"]


class AgentAdapterConfig:
    """An AG2 model config whose client calls agentadapter's ``LLM`` (a ``ModelConfig``)."""

    def __init__(self, model: str | list[str], *, llm: Any = None) -> None:
        self._model = model
        self.llm = llm
        """An ``agentadapter.LLM`` (None: the run's, else the shared one)."""

    @property
    def provider(self) -> ModelProvider:
        # AG2's providers are a closed list; ours speak its Chat Completions shape.
        return ModelProvider.OPENAI

    @property
    def model(self) -> str:
        return self._model if isinstance(self._model, str) else self._model[0]

    def copy(self) -> Self:
        return type(self)(self._model, llm=self.llm)

    def create(self) -> AgentAdapterClient:
        return AgentAdapterClient(self._model, llm=self.llm)

    def create_files_client(self) -> Any:
        raise NotImplementedError("agentadapter's AG2 config has no Files API")


class AgentAdapterClient:
    """The AG2 ``LLMClient`` of :class:`AgentAdapterConfig`."""

    def __init__(self, model: str | list[str], *, llm: Any = None) -> None:
        self.model = model
        self.llm = llm

    async def __call__(
        self,
        messages: Sequence[BaseEvent],
        context: Any,
        *,
        tools: Iterable[Any],
        response_schema: Any,
        serializer: Any,
    ) -> ModelResponse:
        prompt = list(context.prompt)
        if response_schema is not None and getattr(response_schema, "system_prompt", None):
            prompt.append(response_schema.system_prompt)
        wire = convert_messages(prompt, messages, serializer)
        if wire and wire[0].get("role") == "system" and not wire[0].get("content"):
            wire = wire[1:]  # AG2 always opens with a system message, empty when the agent has no prompt
        schema = response_proto_to_schema(response_schema)
        output = None
        if schema is not None:
            json_schema = schema["json_schema"]
            output = OutputSchema(str(json_schema.get("name") or "output"), dict(json_schema.get("schema") or {}))
        request = Request(
            model="",
            messages=coerce_messages(_plain(wire)),
            tools=[coerce_tool(_plain(tool_to_api(tool))) for tool in tools],
            output=output,
        )
        response = await common.answer(self.model, request, llm=self.llm)
        message = ModelMessage(response.text) if response.text else None
        if message is not None:
            await context.send(message)
        return ModelResponse(
            message=message,
            tool_calls=ToolCallsEvent(
                [ToolCallEvent(id=c.id, name=c.name, arguments=json.dumps(c.arguments)) for c in response.tool_calls]
            ),
            usage=_usage(response),
            model=response.model,
            provider=response.provider,
            finish_reason=response.finish_reason,
            response_id=response.id,
        )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _usage(response: Response) -> AG2Usage:
    usage = response.usage
    return AG2Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.input_tokens + usage.output_tokens,
        cache_read_input_tokens=usage.cached_input_tokens or None,
        thinking_tokens=usage.reasoning_tokens or None,
    )


class AG2Agent(FrameworkAgent):
    """An ``ag2.Agent`` run as our agent (``agent.ask`` with the step's input)."""

    framework: ClassVar[str] = "ag2"

    def __init__(
        self,
        target: Any,
        *,
        name: str | None = None,
        llm: Any = None,
        default_model: str | None = None,
        input_map: Callable[[AgentContext], Any] | None = None,
        output_map: Callable[[Any], Any] | None = None,
    ) -> None:
        if not isinstance(target, Agent):
            raise TypeError(f"an ag2 agent wraps an ag2.Agent, not a {type(target).__name__}")
        super().__init__(target, name=name or target.name, llm=llm, input_map=input_map, output_map=output_map)
        self.default_model = default_model
        """When set, the ask runs on this model of ours (an AgentAdapterConfig) whatever the agent's config."""

    def framework_input(self, context: AgentContext) -> Any:
        return context.input_text or "\n\n".join(m.text for m in context.history if m.text)

    async def invoke(self, value: Any, context: AgentContext) -> Any:
        options: dict[str, Any] = {}
        if self.default_model is not None:
            options["config"] = AgentAdapterConfig(self.default_model, llm=self.llm or context.llm)
        reply = await self.target.ask(value, **options)
        return await reply.content()

    def framework_output(self, value: Any) -> Any:
        return "" if value is None else value
