"""Helpers for the agent tests: an offline LLM with a scripted model, and a span collector.

``Script`` is a FunctionBackend whose answers are given in order: a string (a text answer), a list
of parts, a ``Response``, or a function of the request. ``call(name, **arguments)`` builds a tool
call part. Model id ``script/m`` reaches it; ``test/tools`` and ``test/echo`` reach TestBackend.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentadapter.agents import RunConfig, tracing
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Part, Request, Response, TextPart, ToolCallPart, Usage
from agentadapter.testing import FunctionBackend, offline_llm

_ids = itertools.count(1)


def call(tool_name: str, call_id: str | None = None, /, **arguments: Any) -> ToolCallPart:
    return ToolCallPart(call_id or f"call_{next(_ids)}", tool_name, arguments)


def reply(*parts: Part | str, cost: float | None = None, usage: Usage | None = None) -> Response:
    """A scripted response with an explicit cost (the catalog knows no price for script/m)."""
    built = [TextPart(p) if isinstance(p, str) else p for p in parts]
    finish = "tool_calls" if any(isinstance(p, ToolCallPart) for p in built) else "stop"
    return Response(id="r", provider="script", model="m", parts=built, finish_reason=finish,
                    usage=usage or Usage(10, 5), cost_usd=cost)


class Script(FunctionBackend):
    """Answers from a list, in order; fails the test when the list runs out."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        super().__init__(self._next, name="script")

    def _next(self, request: Request) -> Any:
        if not self.answers:
            raise AssertionError(f"the script ran out of answers at call {len(self.requests)}")
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer

    def add(self, *answers: Any) -> None:
        self.answers.extend(answers)


def scripted(*answers: Any) -> tuple[Script, LLM, RunConfig]:
    script = Script(*answers)
    llm = offline_llm(backends={"script": script})
    return script, llm, RunConfig(llm=llm)


@pytest.fixture
def spans() -> Iterator[tracing.SpanCollector]:
    collector = tracing.SpanCollector()
    tracing.add_trace_processor(collector)
    try:
        yield collector
    finally:
        tracing.set_trace_processors([p for p in tracing.get_trace_processors() if p is not collector])


@pytest.fixture
def llm() -> LLM:
    return offline_llm()


def texts(request: Request) -> list[str]:
    """The text of every message of a request (to assert what the model was shown)."""
    return [m.text for m in request.messages]


Answer = str | Response | list[Part] | Callable[[Request], Any]
