"""LangChain and LangGraph on our adapter: a chat model backed by ``LLM``, and their runnables as our agents.

:class:`AgentAdapterChatModel` is a LangChain ``BaseChatModel`` whose calls go through ``LLM`` (any
provider, local model or route of ours, with budgets, the usage ledger and telemetry); it binds tools
(``bind_tools``, so LangGraph's prebuilt agents and ``ToolNode`` loops work) and streams.
:class:`LangChainAgent` runs any runnable - a chain, a chat model, a compiled LangGraph graph - as a
``BaseAgent``: a graph whose state has ``messages`` is given the conversation as LangChain messages and
answers with its last message; another runnable is given the messages and answers with what it returns
(``input_map`` / ``output_map`` change either). Needs the ``langchain`` extra (langchain-core and
langgraph); this module imports them, so it is imported only when used.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from agentadapter.agents.context import AgentContext
from agentadapter.frameworks import common
from agentadapter.frameworks.common import FrameworkAgent
from agentadapter.llm.messages import Message, Request, Response, TextPart, coerce_messages
from agentadapter.llm.tools import coerce_tool

__all__ = ["AgentAdapterChatModel", "LangChainAgent", "LangGraphAgent", "to_langchain_messages"]

_SETTINGS = ("temperature", "top_p", "max_tokens", "seed")


class AgentAdapterChatModel(BaseChatModel):
    """A LangChain chat model whose every call goes through agentadapter's ``LLM``.

    ``model`` is any model id, alias or route of ours (``openai/gpt-4o-mini``, ``smart``,
    ``local/mlx/...``); ``llm`` the facade to use (default: the one of the run the call is part of,
    else the shared ``LLM()``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str | list[str]
    """Our model id, alias or route."""
    llm: Any = Field(default=None, exclude=True)
    """An ``agentadapter.LLM`` (None: the run's, else the shared one)."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None

    @property
    def _llm_type(self) -> str:
        return "agentadapter"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model}

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        """The model with tools offered on every call (LangChain tools, functions, pydantic models or dicts)."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # ------------------------------------------------------------------------------------ calls

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]) -> Request:
        settings = {name: getattr(self, name) for name in _SETTINGS if getattr(self, name) is not None}
        settings.update({name: kwargs[name] for name in _SETTINGS if kwargs.get(name) is not None})
        return Request(
            model="",
            messages=coerce_messages(convert_to_openai_messages(messages)),
            tools=[coerce_tool(tool) for tool in kwargs.get("tools") or ()],
            tool_choice=_tool_choice(kwargs.get("tool_choice")),
            stop=list(stop) if stop else None,
            **settings,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = common.generate_sync(self.model, self._request(messages, stop, kwargs), llm=self.llm)
        return _result(response)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = await common.answer(self.model, self._request(messages, stop, kwargs), llm=self.llm)
        return _result(response)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        async for event in common.stream(self.model, request, llm=self.llm):
            if event.kind == "text" and event.text:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=event.text))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(event.text, chunk=chunk)
                yield chunk
            elif event.kind == "tool_call" and event.tool_call is not None:
                call = event.tool_call
                yield ChatGenerationChunk(
                    message=AIMessageChunk(
                        content="",
                        tool_call_chunks=[
                            {
                                "name": call.name,
                                "args": json.dumps(call.arguments),
                                "id": call.id,
                                "index": event.index,
                                "type": "tool_call_chunk",
                            }
                        ],
                    )
                )
            elif event.kind == "finish" and event.response is not None:
                response = event.response
                yield ChatGenerationChunk(
                    message=AIMessageChunk(
                        content="", usage_metadata=_usage(response), response_metadata=_metadata(response)
                    ),
                )


def _tool_choice(choice: Any) -> str | None:
    """LangChain's tool_choice spellings as ours (``any``/``True`` is ``required``; a dict names a tool)."""
    if choice is None or choice is False:
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        return str(name) if name else None
    return str(choice)


def _usage(response: Response) -> Any:
    usage = response.usage
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _metadata(response: Response) -> dict[str, Any]:
    return {
        "model_name": response.model,
        "provider": response.provider,
        "cost_usd": response.cost_usd,
        "finish_reason": response.finish_reason,
    }


def _result(response: Response) -> ChatResult:
    message = AIMessage(
        content=response.text,
        tool_calls=[
            {"name": c.name, "args": dict(c.arguments), "id": c.id, "type": "tool_call"} for c in response.tool_calls
        ],
        usage_metadata=_usage(response),
        response_metadata=_metadata(response),
        id=response.id or None,
    )
    return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model_name": response.model})


def to_langchain_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """Our messages as LangChain's (text, tool calls and tool results)."""
    return convert_to_messages([_openai_dict(m) for m in messages])


def _openai_dict(message: Message) -> dict[str, Any]:
    text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
    if message.role == "tool":
        result = message.parts[0]
        return {
            "role": "tool",
            "content": getattr(result, "content", text),
            "tool_call_id": getattr(result, "call_id", ""),
        }
    data: dict[str, Any] = {"role": message.role, "content": text}
    if message.role == "assistant" and message.tool_calls:
        data["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in message.tool_calls
        ]
    return data


class LangChainAgent(FrameworkAgent):
    """A LangChain runnable (a chain, a chat model, a compiled LangGraph graph) run as our agent."""

    framework: ClassVar[str] = "langchain"

    def __init__(
        self,
        target: Any,
        *,
        name: str | None = None,
        llm: Any = None,
        input_map: Callable[[AgentContext], Any] | None = None,
        output_map: Callable[[Any], Any] | None = None,
    ) -> None:
        if not isinstance(target, Runnable):
            raise TypeError(
                f"a {self.framework} agent wraps a LangChain Runnable (a chain, a chat model, a "
                f"compiled graph), not a {type(target).__name__}"
            )
        super().__init__(
            target,
            name=name or getattr(target, "name", None) or None,
            llm=llm,
            input_map=input_map,
            output_map=output_map,
        )

    def _takes_messages_state(self) -> bool:
        """A LangGraph graph whose state has ``messages`` (the prebuilt agents, MessagesState graphs)."""
        channels = getattr(self.target, "channels", None)
        return isinstance(channels, Mapping) and "messages" in channels

    def framework_input(self, context: AgentContext) -> Any:
        messages = to_langchain_messages([*context.history, *context.messages])
        return {"messages": messages} if self._takes_messages_state() else messages

    async def invoke(self, value: Any, context: AgentContext) -> Any:
        return await self.target.ainvoke(
            value, config={"run_name": self.name, "metadata": {"agentadapter_run_id": context.run_id}}
        )

    def framework_output(self, value: Any) -> Any:
        if isinstance(value, Mapping) and isinstance(value.get("messages"), list) and value["messages"]:
            value = value["messages"][-1]
        if isinstance(value, BaseMessage):
            return str(value.text)
        return value


class LangGraphAgent(LangChainAgent):
    """A compiled LangGraph graph run as our agent (the same wrapper, named for the workflow's ``framework:``)."""

    framework: ClassVar[str] = "langgraph"
