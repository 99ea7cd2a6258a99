"""Test doubles and the backend conformance kit, public so users test their own code offline.

``TestBackend`` and ``FunctionBackend`` answer without a network (model ids ``test/echo``, which
only echoes, and ``test/tools``, which calls every tool it is offered, resolve to ``TestBackend``).
``offline_llm()`` builds an ``LLM`` that refuses every provider except the test backends, for test
suites that must never reach the internet. ``backend_conformance`` is the contract suite every
backend passes (see docs/backends.md). ``collect_stream``, ``final_response`` and
``comparable_response`` are what a backend's stream tests need: every event of a stream, the answer
its last event carries, and an answer without its latency (to compare a streamed answer with the
same one generated).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agentadapter.llm import conformance as backend_conformance
from agentadapter.llm.backends.base import Backend
from agentadapter.llm.backends.testing import FunctionBackend, TestBackend, example_value
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Request, Response, StreamEvent
from agentadapter.llm.runners import conformance as runner_conformance
from agentadapter.llm.runners.testing import ScriptedRunner, build_tiny_model

__all__ = [
    "FunctionBackend",
    "ScriptedRunner",
    "TestBackend",
    "backend_conformance",
    "build_tiny_model",
    "collect_stream",
    "comparable_response",
    "example_value",
    "final_response",
    "offline_llm",
    "runner_conformance",
]


def offline_llm(backends: Mapping[str, Backend] | None = None, **kwargs: Any) -> LLM:
    """An ``LLM`` with an empty environment: only the test backends (and those given) answer."""
    return LLM(config={}, backends=backends, environ={}, **kwargs)


async def collect_stream(backend: Backend, request: Request) -> list[StreamEvent]:
    """Every event of ``backend.stream(request)``, in order."""
    return [event async for event in backend.stream(request)]


def final_response(events: list[StreamEvent]) -> Response:
    """The answer a stream's last event carries (which must be its ``finish``)."""
    assert events, "the stream sent no events"
    last = events[-1]
    assert last.kind == "finish", f"the stream's last event is {last.kind!r}, not 'finish'"
    assert last.response is not None, "the stream's finish event carries no response"
    return last.response


def comparable_response(response: Response) -> dict[str, Any]:
    """``response`` as a dict without its latency: equal for a streamed answer and the same one generated."""
    data = dataclasses.asdict(response)
    data.pop("latency_ms")
    return data
