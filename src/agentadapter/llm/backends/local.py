"""``LocalBackend``: in-process models (MLX, transformers, vLLM) answering like every other backend.

Model ids are ``local/<runner>/<model>`` and ``local/<model>`` (the backend's runner: ``mlx`` unless
configured otherwise); ``<model>`` is a directory, a name found in ``LOCAL_MODEL_PATHS``, or a
repository already in the Hugging Face cache. Weights are never downloaded. The backend turns the
neutral request into chat messages (the model's chat template renders them, tools included) and a
:class:`~agentadapter.llm.runners.base.GenerationConfig` (the request's settings plus its
``extra_body``: ``top_k``, ``min_p``, ``repetition_penalty``, runner-specific options), asks a
runner from the process-wide cache of loaded models, and answers with the same
:class:`~agentadapter.llm.messages.Response` every backend returns: tool calls parsed from the
chat-template formats (:mod:`agentadapter.llm.runners.tool_calls`), usage counted with the model's
tokenizer, ``cost_usd`` 0. A stream accumulates to exactly that response.

Structured output: the schema goes into the system message and the answer is validated (a JSON
value embedded in prose is taken out); an invalid answer goes back to the model with the error, at
most ``output_repairs`` times (default 2), after which the facade raises ``OutputValidationError``.
A stream with an output schema is validated first and then replayed.

Options (``backends: {name: {type: local, ...}}`` in agentadapter.yaml, or keyword arguments):
``runner`` (a name or a Runner class), ``device_config``, ``runner_kwargs`` (the runner's own
options), ``output_repairs``, ``max_tokens`` (the default bound; 512 otherwise).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, assert_never

from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig, elapsed_ms
from agentadapter.llm.errors import APIError, CapabilityError, ConfigurationError, OutputValidationError
from agentadapter.llm.messages import (
    FilePart,
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    Request,
    Response,
    StreamAccumulator,
    StreamEvent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
    response_events,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.runners.base import Generation, GenerationConfig, Runner
from agentadapter.llm.runners.chat import with_system_text
from agentadapter.llm.runners.registry import (
    DEFAULT_RUNNER,
    RunnerSpec,
    acquire_runner,
    is_runner_name,
    runner_class,
)
from agentadapter.llm.runners.tool_calls import ParsedOutput, ToolCallStreamFilter, parse_tool_calls
from agentadapter.llm.transport import Transport

__all__ = ["LOCAL_CAPABILITIES", "LocalBackend", "chat_messages"]

DEFAULT_OUTPUT_REPAIRS = 2
_OPTIONS = frozenset({"runner", "device_config", "runner_kwargs", "output_repairs", "max_tokens"})

LOCAL_CAPABILITIES = catalog.Capabilities(
    tools=True, parallel_tools=True, vision=False, json_schema=True, streaming=True,
    pricing=catalog.Pricing(input=0.0, output=0.0, source="local model: no per-token price"),
    known=True, source="local runner",
)
"""What a local model is assumed to do: tools and JSON output through its chat template, text only, free."""

_json_decoder = json.JSONDecoder()


class LocalBackend(Backend):
    """A backend over local runners (see the module docstring)."""

    type_name = "local"

    def __init__(
        self,
        config: BackendConfig | None = None,
        *,
        transport: Transport[Any] | None = None,
        runner: RunnerSpec | None = None,
        device_config: Mapping[str, Any] | None = None,
        runner_kwargs: Mapping[str, Any] | None = None,
        output_repairs: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        super().__init__(config or BackendConfig(name="local", type="local"), transport=transport)
        options = dict(self.config.options)
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"backend {self.name} (type local) does not take {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(_OPTIONS))}"
            )
        self.runner: RunnerSpec = runner if runner is not None else options.get("runner") or DEFAULT_RUNNER
        self.device_config = dict(device_config if device_config is not None else options.get("device_config") or {})
        self.runner_kwargs = dict(runner_kwargs if runner_kwargs is not None else options.get("runner_kwargs") or {})
        repairs = options.get("output_repairs", DEFAULT_OUTPUT_REPAIRS) if output_repairs is None else output_repairs
        if not isinstance(repairs, int) or repairs < 0:
            raise ConfigurationError(f"backend {self.name}: output_repairs must be 0 or more, not {repairs!r}")
        self.output_repairs = repairs
        self.max_tokens: int | None = max_tokens if max_tokens is not None else options.get("max_tokens")
        self._runners: dict[str, concurrent.futures.Future[tuple[Runner, str]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalBackend(name={self.config.name!r}, runner={self.runner!r})"

    # ------------------------------------------------------------------------------ the contract

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        runner, path = await self.runner_for(request.model)
        conversation = self.conversation(request)
        tools = self.tool_dicts(request)
        config = self.generation_config(request)
        usage = Usage()
        attempt = 0
        while True:
            generation = await runner.generate(conversation, config, tools=tools)
            usage = usage + Usage(generation.prompt_tokens, generation.completion_tokens)
            response = self._response(request, generation, runner, path, bool(tools), usage)
            if request.output is None or response.tool_calls:
                break
            problem = _validate(request.output, response)
            if problem is None or attempt >= self.output_repairs:
                break  # an answer still invalid is left to the facade, which raises OutputValidationError
            attempt += 1
            conversation = [
                *conversation,
                {"role": "assistant", "content": generation.text},
                {"role": "user", "content": _repair_message(problem)},
            ]
        response.latency_ms = elapsed_ms(started)
        return response

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        if request.output is not None:
            # Structured output is validated (and repaired) before anything is shown.
            async for event in _replay(await self.generate(request), started):
                yield event
            return
        runner, path = await self.runner_for(request.model)
        tools = self.tool_dicts(request)
        accumulator = StreamAccumulator(self.name, request.model, _response_id())
        text_filter = ToolCallStreamFilter() if tools else None
        generation: Generation | None = None
        chunks = runner.stream(self.conversation(request), self.generation_config(request), tools=tools)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                if chunk.generation is not None:
                    generation = chunk.generation
                    continue
                visible = text_filter.feed(chunk.text) if text_filter is not None else chunk.text
                if visible:
                    yield accumulator.add(StreamEvent("text", text=visible))
        assert generation is not None
        parsed = parse_tool_calls(generation.text, _tool_names(tools)) if tools else ParsedOutput(generation.text)
        if text_filter is not None and parsed.text.startswith(text_filter.emitted):
            remainder = parsed.text[len(text_filter.emitted) :]
            if remainder:
                yield accumulator.add(StreamEvent("text", text=remainder))
        for index, call in enumerate(parsed.tool_calls, start=1):
            yield accumulator.add(StreamEvent(
                "tool_call_delta", index=index, call_id=call.id, name=call.name,
                arguments_delta=json.dumps(call.arguments),
            ))
            yield accumulator.add(StreamEvent("tool_call", index=index, tool_call=call))
        yield accumulator.add(StreamEvent("usage", usage=Usage(generation.prompt_tokens, generation.completion_tokens)))
        accumulator.provider_details = _details(runner, path, parsed)
        final = accumulator.finish("tool_calls" if parsed.tool_calls else generation.finish_reason)
        assert final.response is not None
        final.response.cost_usd = 0.0
        final.response.latency_ms = elapsed_ms(started)
        yield final

    def capabilities(self, model: str) -> catalog.Capabilities:
        entry = catalog.find(f"{self.config.name}/{model}")
        return entry if entry is not None else LOCAL_CAPABILITIES

    async def count_tokens(self, request: Request) -> int:
        """The prompt's tokens counted with the model's own tokenizer and chat template (loads the model)."""
        runner, _ = await self.runner_for(request.model)
        return await runner.count_tokens(self.conversation(request), tools=self.tool_dicts(request))

    async def list_models(self) -> list[str]:
        """The model directories (holding a config.json) found in LOCAL_MODEL_PATHS."""
        return await asyncio.to_thread(_local_model_names)

    async def aclose(self) -> None:
        """Clean up the runners this backend owns; shared ones stay loaded (``unload_runners()`` frees them)."""
        with self._lock:
            entries, self._runners = list(self._runners.values()), {}
        for entry in entries:
            if entry.done() and entry.exception() is None:
                runner = entry.result()[0]
                if not type(runner).shared:
                    await runner.cleanup()

    # ------------------------------------------------------------------------------- the mapping

    def split_model(self, model: str) -> tuple[RunnerSpec, str]:
        """``<runner>/<model>`` or ``<model>`` -> (runner, model name)."""
        head, sep, rest = model.partition("/")
        if sep and rest:
            configured = self.runner
            configured_name = configured if isinstance(configured, str) else (configured.name or configured.__name__)
            if head == configured_name:
                return configured, rest
            if is_runner_name(head):
                return head, rest
        if not model:
            raise ConfigurationError(
                f"backend {self.name}: no model given; use local/<runner>/<model> or local/<model>"
            )
        return self.runner, model

    async def runner_for(self, model: str) -> tuple[Runner, str]:
        """The loaded runner serving ``model`` and its directory (resolved and loaded on first use)."""
        with self._lock:
            entry = self._runners.get(model)
            reusable = entry is not None and not (
                entry.done() and (entry.exception() is not None or entry.result()[0].closed)
            )
            if not reusable:
                entry = self._runners[model] = concurrent.futures.Future()
        assert entry is not None
        if not reusable:
            try:
                entry.set_result(await self._acquire(model))
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):  # others waiting must not be cancelled too
                    entry.set_exception(APIError(
                        f"loading {model!r} was abandoned by the call that started it; call again",
                        provider=self.name, model=model, retryable=True,
                    ))
                else:
                    entry.set_exception(exc)
                with self._lock:
                    if self._runners.get(model) is entry:
                        del self._runners[model]
                raise
        return await asyncio.shield(asyncio.wrap_future(entry))

    async def _acquire(self, model: str) -> tuple[Runner, str]:
        spec, name = self.split_model(model)
        cls = runner_class(spec)
        path = await asyncio.to_thread(cls.resolve_model, name)
        return await acquire_runner(cls, path, self.device_config, self.runner_kwargs), path

    def conversation(self, request: Request) -> list[dict[str, Any]]:
        """The request as chat-template messages, with the instructions tools and output need."""
        conversation = chat_messages(request.messages)
        notes: list[str] = []
        if request.tools and request.tool_choice == "required":
            notes.append("Answer with a tool call now, not with text.")
        elif request.tools and request.tool_choice not in (None, "auto", "none", "required"):
            notes.append(f"Answer with a call of the tool {request.tool_choice} now, not with text.")
        if request.output is not None:
            notes.append(_output_instruction(request.output))
        return with_system_text(conversation, "\n\n".join(notes)) if notes else conversation

    def tool_dicts(self, request: Request) -> list[dict[str, Any]] | None:
        """The tools offered, in the JSON shape chat templates take (None when there are none)."""
        if not request.tools or request.tool_choice == "none":
            return None
        tools = request.tools
        if request.tool_choice not in (None, "auto", "required"):
            tools = [tool for tool in tools if tool.name == request.tool_choice]
        return [tool.to_openai() for tool in tools] or None

    def generation_config(self, request: Request) -> GenerationConfig:
        """The request's settings, with ``extra_body`` as generation options (top_k, min_p, ...)."""
        settings: dict[str, Any] = dict(request.extra_body)
        if request.max_tokens is not None:
            settings["max_tokens"] = request.max_tokens
        elif self.max_tokens is not None:
            settings.setdefault("max_tokens", self.max_tokens)
        for name in ("temperature", "top_p", "seed"):
            value = getattr(request, name)
            if value is not None:
                settings[name] = value
        if request.stop:
            settings["stop"] = list(request.stop)
        if request.deadline is not None:
            settings["deadline"] = request.deadline
        return GenerationConfig.of(settings)

    def _response(
        self, request: Request, generation: Generation, runner: Runner, path: str, with_tools: bool, usage: Usage,
    ) -> Response:
        names = _tool_names(self.tool_dicts(request)) if with_tools else ()
        parsed = parse_tool_calls(generation.text, names) if with_tools else ParsedOutput(generation.text)
        parts: list[Part] = [TextPart(parsed.text)] if parsed.text else []
        parts.extend(parsed.tool_calls)
        return Response(
            id=_response_id(),
            provider=self.name,
            model=request.model,
            parts=parts,
            finish_reason="tool_calls" if parsed.tool_calls else generation.finish_reason,
            usage=usage,
            cost_usd=0.0,
            provider_details=_details(runner, path, parsed),
        )


# ------------------------------------------------------------------------------------------ helpers


def chat_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Neutral messages as chat-template messages (OpenAI's shape, arguments as dicts).

    Reasoning parts are not replayed (local chat templates drop earlier thinking); images and
    files raise :class:`CapabilityError`: the local runners take text.
    """
    result: list[dict[str, Any]] = []
    for message in messages:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ToolCallPart):
                calls.append({"id": part.id, "type": "function",
                              "function": {"name": part.name, "arguments": part.arguments}})
            elif isinstance(part, ToolResultPart):
                results.append({"role": "tool", "tool_call_id": part.call_id, "name": part.name,
                                "content": part.content})
            elif isinstance(part, ReasoningPart):
                continue
            elif isinstance(part, ImagePart | FilePart):
                raise CapabilityError(
                    f"a {message.role} message holds a {part.kind} part, but local runners take text only; "
                    "send it to a vision model through an online backend"
                )
            else:
                assert_never(part)
        result.extend(results)
        content = "".join(texts)
        if calls:
            result.append({"role": "assistant", "content": content, "tool_calls": calls})
        elif content or not results:
            result.append({"role": "user" if message.role == "tool" else message.role, "content": content})
    return result


def _tool_names(tools: Sequence[Mapping[str, Any]] | None) -> frozenset[str]:
    return frozenset(str(t["function"]["name"]) for t in tools or ())


def _response_id() -> str:
    return f"local-{uuid.uuid4().hex[:24]}"


def _details(runner: Runner, path: str, parsed: ParsedOutput) -> dict[str, Any]:
    details: dict[str, Any] = {"runner": runner.label, "model_path": path}
    if parsed.format is not None:
        details["tool_call_format"] = parsed.format
    return details


def _output_instruction(output: OutputSchema) -> str:
    return (
        "Answer with one JSON value that matches this JSON schema, and nothing else (no prose, no Markdown):\n"
        + json.dumps(output.json_schema, ensure_ascii=False)
    )


def _repair_message(problem: str) -> str:
    return f"That answer is not valid: {problem}\nAnswer again with only the JSON value that matches the schema."


def _validate(output: OutputSchema, response: Response) -> str | None:
    """Validate the answer into ``response.output``; None when valid, else what is wrong with it."""
    text = response.text
    try:
        response.output = output.parse(text)
        return None
    except OutputValidationError as error:
        embedded = _embedded_json(text)
        if embedded is None or embedded == text.strip():
            return str(error)
        try:
            value = output.parse(embedded)
        except OutputValidationError:
            return str(error)
        # The JSON came wrapped in prose: the answer is the JSON.
        response.parts = [TextPart(embedded)]
        response.output = value
        return None


def _embedded_json(text: str, attempts: int = 16) -> str | None:
    """The first JSON object or list inside ``text`` (a few candidate starts are tried)."""
    start = 0
    for _ in range(attempts):
        starts = [i for i in (text.find("{", start), text.find("[", start)) if i != -1]
        if not starts:
            return None
        index = min(starts)
        try:
            _, end = _json_decoder.raw_decode(text, index)
        except ValueError:
            start = index + 1
            continue
        return text[index:end]
    return None


async def _replay(response: Response, started: float) -> AsyncIterator[StreamEvent]:
    """A finished response as the stream events that accumulate back into it."""
    accumulator = StreamAccumulator(response.provider, response.model, response.id)
    accumulator.provider_details = response.provider_details
    for event in response_events(response):
        yield accumulator.add(event)
    final = accumulator.finish(response.finish_reason)
    assert final.response is not None
    final.response.cost_usd = 0.0
    final.response.output = response.output
    final.response.latency_ms = elapsed_ms(started)
    yield final


def _local_model_names() -> list[str]:
    from agentadapter.config import get_settings

    names: set[str] = set()
    for directory in get_settings().local_model_paths:
        root = Path(directory).expanduser()
        if root.is_dir():
            names.update(child.name for child in root.iterdir() if (child / "config.json").is_file())
    return sorted(names)
