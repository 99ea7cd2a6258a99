"""The backend conformance kit: the contract every backend passes, ours and third parties' alike.

A backend author supplies two things: a factory that builds the backend for a base URL, and a
loopback server that speaks the backend's wire format and implements :class:`ConformanceServer`
(queue a text answer, a tool-call answer or an error; expose the requests it received). The kit
then checks, against that real HTTP server, what the rest of AgentAdapter relies on: text, usage,
finish reasons, tool calls (streamed and not), a tool round trip whose results really reach the
server (read back from the request it received), stream/non-stream equality, and error translation.
The kit closes every backend it makes and every stream it opens, whether a check passes or fails.
``run_conformance`` runs every check and returns a report; ``CHECKS`` lets a test suite
parametrize over them. Exposed publicly as ``agentadapter.testing.backend_conformance``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentadapter.llm.backends.base import Backend
from agentadapter.llm.errors import (
    AuthenticationError,
    ContextWindowExceededError,
    RateLimitError,
    ServerError,
)
from agentadapter.llm.messages import (
    Message,
    Request,
    Response,
    StreamAccumulator,
    StreamEvent,
    ToolCallPart,
    ToolResultPart,
)
from agentadapter.llm.tools import Tool


class ConformanceServer(Protocol):
    """What the kit needs from a loopback server speaking the backend's wire format."""

    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        """The next request is answered with this text and usage (streamed or not, as asked)."""

    def queue_tool_calls(self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int,
                         output_tokens: int) -> None:
        """The next request is answered with these tool calls (name, arguments)."""

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """The next request is answered with this error status, in the provider's error shape."""

    def request_count(self) -> int:
        """How many requests the server has received."""

    def last_request_body(self) -> Any:
        """The decoded JSON body of the most recent request the server received."""


BackendFactory = Callable[[], Backend]


@dataclass(slots=True)
class CheckResult:
    name: str
    passed: bool
    detail: str = ""


@dataclass(slots=True)
class ConformanceReport:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def __str__(self) -> str:
        return "\n".join(f"{'PASS' if r.passed else 'FAIL'} {r.name} {r.detail}".rstrip() for r in self.results)


class ConformanceFailure(AssertionError):
    """A backend broke the contract; the message says which part."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceFailure(message)


def weather_tool() -> Tool:
    return Tool(
        name="get_weather",
        description="Current weather for a city.",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )


def _request(model: str, messages: list[Message] | None = None, **settings: Any) -> Request:
    return Request(model=model, messages=messages or [Message.user("Say hello")], **settings)


@contextlib.asynccontextmanager
async def _opened(make: BackendFactory) -> AsyncIterator[Backend]:
    """A backend from the factory, closed when the check is done with it (passed or not)."""
    backend = make()
    try:
        yield backend
    finally:
        await backend.aclose()


async def _generate(make: BackendFactory, request: Request) -> Response:
    async with _opened(make) as backend:
        return await backend.generate(request)


async def _collect(make: BackendFactory, request: Request) -> tuple[list[StreamEvent], Response]:
    async with _opened(make) as backend:
        stream = backend.stream(request)
        try:
            events = [event async for event in stream]
        finally:
            close = getattr(stream, "aclose", None)  # an async generator's; a bare iterator may have none
            if close is not None:
                await close()
    _expect(bool(events) and events[-1].kind == "finish", "a stream must end with a 'finish' event")
    finish = events[-1]
    _expect(finish.response is not None, "the 'finish' event must carry the accumulated response")
    assert finish.response is not None
    # Re-accumulating the events must give the same parts: the finish response is not made up.
    accumulator = StreamAccumulator(finish.response.provider, finish.response.model, finish.response.id)
    for event in events[:-1]:
        accumulator.add(event)
    _expect(
        accumulator.response().parts == finish.response.parts,
        "the finish response's parts differ from what the stream's events accumulate to",
    )
    return events, finish.response


def _comparable(response: Response) -> dict[str, Any]:
    data = dataclasses.asdict(response)
    for volatile in ("id", "latency_ms", "attempts", "provider_details"):
        data.pop(volatile, None)
    return data


# ------------------------------------------------------------------------------------------ checks


async def check_text(make: BackendFactory, server: ConformanceServer, model: str) -> None:
    server.queue_text("Hello there!", input_tokens=11, output_tokens=3)
    async with _opened(make) as backend:
        response = await backend.generate(_request(model))
    _expect(response.text == "Hello there!", f"text: expected 'Hello there!', got {response.text!r}")
    _expect(response.finish_reason == "stop", f"finish_reason: expected 'stop', got {response.finish_reason!r}")
    _expect(response.provider == backend.name, f"provider: expected {backend.name!r}, got {response.provider!r}")
    _expect(
        (response.usage.input_tokens, response.usage.output_tokens) == (11, 3),
        f"usage: expected 11 in / 3 out, got {response.usage.input_tokens} / {response.usage.output_tokens}",
    )
    _expect(bool(response.model), "response.model must be set")


async def check_stream_equals_generate(make: BackendFactory, server: ConformanceServer, model: str) -> None:
    server.queue_text("One two three four.", input_tokens=7, output_tokens=5)
    generated = await _generate(make, _request(model))
    server.queue_text("One two three four.", input_tokens=7, output_tokens=5)
    events, streamed = await _collect(make, _request(model))
    _expect(any(e.kind == "text" for e in events), "a text answer must stream 'text' events")
    _expect(
        _comparable(streamed) == _comparable(generated),
        f"the accumulated stream differs from generate():\n stream:   {_comparable(streamed)}\n"
        f" generate: {_comparable(generated)}",
    )


async def check_tool_calls(make: BackendFactory, server: ConformanceServer, model: str) -> None:
    calls = [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Lima"})]
    server.queue_tool_calls(calls, input_tokens=20, output_tokens=10)
    request = _request(model, [Message.user("Weather in Oslo and Lima?")], tools=[weather_tool()])
    response = await _generate(make, request)
    got = [(c.name, c.arguments) for c in response.tool_calls]
    _expect(got == calls, f"tool calls: expected {calls}, got {got}")
    _expect(
        response.finish_reason == "tool_calls",
        f"finish_reason: expected 'tool_calls', got {response.finish_reason!r}",
    )
    _expect(all(c.id for c in response.tool_calls), "every tool call needs an id")
    server.queue_tool_calls(calls, input_tokens=20, output_tokens=10)
    events, streamed = await _collect(make, request)
    streamed_calls = [
        (e.tool_call.name, e.tool_call.arguments) for e in events if e.kind == "tool_call" and e.tool_call
    ]
    _expect(streamed_calls == calls, f"streamed tool_call events: expected {calls}, got {streamed_calls}")
    _expect([(c.name, c.arguments) for c in streamed.tool_calls] == calls, "the streamed response lost tool calls")


_RESULT_MARKERS = ("clear-skies-4417", "station-offline-9021")
"""Distinctive words in the round trip's tool results, looked for in the request the server got."""


async def check_tool_round_trip(make: BackendFactory, server: ConformanceServer, model: str) -> None:
    conversation = [
        Message.system("You are terse."),
        Message.user("Weather in Oslo?"),
        Message("assistant", [ToolCallPart("call_1", "get_weather", {"city": "Oslo"})]),
        Message("tool", [ToolResultPart("call_1", "get_weather", f'{{"sky": "{_RESULT_MARKERS[0]}"}}')]),
        Message("assistant", [ToolCallPart("call_2", "get_weather", {"city": "Bergen"})]),
        Message("tool", [ToolResultPart("call_2", "get_weather", _RESULT_MARKERS[1], is_error=True)]),
    ]
    server.queue_text("Clear in Oslo.", input_tokens=30, output_tokens=4)
    response = await _generate(make, _request(model, conversation, tools=[weather_tool()]))
    _expect(response.text == "Clear in Oslo.", f"after tool results: expected the answer, got {response.text!r}")
    # An answer proves nothing about the history: the results must be in what the server received.
    received = json.dumps(server.last_request_body(), ensure_ascii=False)
    missing = [marker for marker in _RESULT_MARKERS if marker not in received]
    _expect(
        not missing,
        f"the tool results never reached the server: {missing} are not in the request body it received",
    )
    _expect(
        "Oslo" in received and "Bergen" in received,
        "the assistant's tool calls (their arguments) are not in the request body the server received",
    )


async def check_errors(make: BackendFactory, server: ConformanceServer, model: str) -> None:
    cases: list[tuple[int, str, dict[str, str] | None, type[Exception]]] = [
        (401, "invalid api key", None, AuthenticationError),
        (429, "rate limit reached", {"retry-after": "7"}, RateLimitError),
        (500, "internal error", None, ServerError),
        (400, "prompt is too long: maximum context length exceeded", None, ContextWindowExceededError),
    ]
    for status, message, headers, expected in cases:
        server.queue_error(status, message, headers)
        before = server.request_count()
        try:
            await _generate(make, _request(model))
        except expected as error:
            if isinstance(error, RateLimitError):
                _expect(error.retry_after == 7.0, f"429: retry_after should be 7.0, got {error.retry_after}")
        except Exception as error:
            raise ConformanceFailure(
                f"HTTP {status}: expected {expected.__name__}, got {type(error).__name__}: {error}"
            ) from error
        else:
            raise ConformanceFailure(f"HTTP {status}: expected {expected.__name__}, nothing was raised")
        _expect(server.request_count() == before + 1, f"HTTP {status}: a backend must not retry by itself")


CHECKS: dict[str, Callable[[BackendFactory, ConformanceServer, str], Awaitable[None]]] = {
    "text": check_text,
    "stream_equals_generate": check_stream_equals_generate,
    "tool_calls": check_tool_calls,
    "tool_round_trip": check_tool_round_trip,
    "errors": check_errors,
}


async def run_conformance(make: BackendFactory, server: ConformanceServer, model: str) -> ConformanceReport:
    """Run every check; a failing check is reported, the rest still run."""
    report = ConformanceReport()
    for name, check in CHECKS.items():
        try:
            await check(make, server, model)
        except ConformanceFailure as failure:
            report.results.append(CheckResult(name, False, str(failure)))
        except Exception as error:  # a crash is a failure of the backend, reported with its type
            report.results.append(CheckResult(name, False, f"{type(error).__name__}: {error}"))
        else:
            report.results.append(CheckResult(name, True))
    return report


__all__ = [
    "CHECKS",
    "CheckResult",
    "ConformanceFailure",
    "ConformanceReport",
    "ConformanceServer",
    "run_conformance",
    "weather_tool",
]
