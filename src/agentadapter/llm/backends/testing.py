"""Offline test backends: deterministic answers with no key and no network.

:class:`TestBackend` answers by its model name. ``test/echo`` only echoes: it answers with the last
user message, whatever tools it is offered. ``test/tools`` (and any other name) calls tools: given
tools, it first calls every tool with arguments that satisfy its schema, then answers from the
results. Both, given an output schema, answer with an object that validates against it. A test
backend named in ``agentadapter.yaml`` with ``latency_ms: 200`` waits that long before each answer,
like a provider would (latency-bound benchmarks and tests of what runs concurrently use it).
:class:`FunctionBackend` lets a test write each response itself. Both stream by replaying the
response as events, so streaming and non-streaming agree exactly. They are public API: the README's
demo, the agent and orchestrator tests and users' own tests run on them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from agentadapter.llm.backends.base import Backend, BackendConfig, estimate_tokens
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.messages import (
    FinishReason,
    Part,
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
from agentadapter.llm.transport import Transport

ECHO_MODEL = "echo"
"""The test model that never calls a tool (``test/echo``)."""


def _config(name: str) -> BackendConfig:
    return BackendConfig(name=name, type="test")


class _ReplayingBackend(Backend):
    """Streams by replaying the complete response through the accumulator."""

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        response = await self.generate(request)
        accumulator = StreamAccumulator(response.provider, response.model, response.id)
        accumulator.provider_details = response.provider_details
        for event in response_events(response):
            yield accumulator.add(event)
        finish = accumulator.finish(response.finish_reason)
        assert finish.response is not None
        # What the events cannot carry rides over, so the stream equals generate() exactly.
        finish.response.cost_usd = response.cost_usd
        finish.response.output = response.output
        yield finish

    async def aclose(self) -> None:
        return None


class TestBackend(_ReplayingBackend):
    """Deterministic, offline answers (see the module docstring)."""

    __test__ = False  # not a pytest test class
    type_name = "test"

    def __init__(self, config: BackendConfig | None = None, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config or _config("test"), transport=transport)
        self.calls = 0
        latency_ms = self.config.options.get("latency_ms", 0)
        if not isinstance(latency_ms, int | float) or isinstance(latency_ms, bool) or latency_ms < 0:
            raise ConfigurationError(
                f"backend {self.config.name!r}: latency_ms must be a non-negative number of milliseconds, "
                f"not {latency_ms!r}"
            )
        self.latency_s = float(latency_ms) / 1000.0

    async def generate(self, request: Request) -> Response:
        self.calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        parts = self._answer(request)
        usage = Usage(
            input_tokens=estimate_tokens(request),
            output_tokens=max(1, sum(len(json.dumps(_part_payload(p))) for p in parts) // 4),
        )
        finish: FinishReason = "tool_calls" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
        return Response(
            id=f"test-{self.calls}",
            provider=self.config.name,
            model=request.model,
            parts=parts,
            finish_reason=finish,
            usage=usage,
        )

    def _answer(self, request: Request) -> list[Part]:
        last = request.messages[-1] if request.messages else None
        results = [p for p in last.parts if isinstance(p, ToolResultPart)] if last else []
        calls_tools = request.model != ECHO_MODEL
        if calls_tools and request.tools and not results and request.tool_choice != "none":
            tools = request.tools
            if request.tool_choice not in (None, "auto", "required"):
                tools = [t for t in tools if t.name == request.tool_choice]
            return [
                ToolCallPart(id=f"call_{self.calls}_{i}", name=tool.name, arguments=example_value(tool.parameters))
                for i, tool in enumerate(tools)
            ]
        if request.output is not None:
            return [TextPart(json.dumps(example_value(request.output.json_schema)))]
        if results:
            text = "; ".join(f"{r.name or r.call_id}: {r.content}" for r in results)
            return [TextPart(text)]
        user_text = next((m.text for m in reversed(request.messages) if m.role == "user"), "")
        return [TextPart(user_text)]


def _part_payload(part: Part) -> Any:
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, ToolCallPart):
        return [part.name, part.arguments]
    return part.kind


def example_value(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None) -> Any:
    """A value that satisfies a JSON schema (the common subset tools and outputs use)."""
    defs = defs if defs is not None else (schema.get("$defs") or schema.get("definitions") or {})
    if "$ref" in schema:
        return example_value(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example_value(options[0], defs)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required", list(properties))
        return {name: example_value(properties[name], defs) for name in required if name in properties}
    if kind == "array":
        items = schema.get("items")
        count = max(1, int(schema.get("minItems", 1)))
        return [example_value(items, defs) for _ in range(count)] if items else []
    if kind == "string":
        fmt = schema.get("format")
        samples = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "email": "user@example.com",
                   "uri": "https://example.com", "uuid": "00000000-0000-4000-8000-000000000000"}
        return samples.get(str(fmt), "x" * max(1, int(schema.get("minLength", 4))) if fmt is None else "example")
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return None


ResponseFunction = Callable[[Request], "Response | str | list[Part] | Awaitable[Response | str | list[Part]]"]


class FunctionBackend(_ReplayingBackend):
    """A backend whose every answer is written by ``function(request)`` (sync or async).

    The function may return a :class:`Response`, a string (one text part), or a list of parts.
    """

    type_name = "function"

    def __init__(self, function: ResponseFunction, *, name: str = "function") -> None:
        super().__init__(_config(name))
        self.function = function
        self.requests: list[Request] = []

    async def generate(self, request: Request) -> Response:
        self.requests.append(request)
        result = self.function(request)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Response):
            return result
        parts: list[Part] = [TextPart(result)] if isinstance(result, str) else list(result)
        finish: FinishReason = "tool_calls" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
        return Response(
            id=f"{self.config.name}-{len(self.requests)}",
            provider=self.config.name,
            model=request.model,
            parts=parts,
            finish_reason=finish,
            usage=Usage(input_tokens=estimate_tokens(request), output_tokens=1),
        )
