"""Helpers for the built-in tool tests: a scripted model to drive an agent, and audit sinks.

``scripted(*answers)`` gives a ``Script`` backend (answers in order: text, parts, or a function of
the request), an offline ``LLM`` on it, and a ``RunConfig``; ``call(name, **arguments)`` builds a
tool call. ``tool_results(result)`` lists the ``(content, is_error)`` of every tool result the
model was sent during a run.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from agentadapter.agents import AgentResult, RunConfig
from agentadapter.agents.tools.audit import InMemoryToolAudit
from agentadapter.llm.client import LLM
from agentadapter.llm.messages import Part, Request, Response, TextPart, ToolCallPart, ToolResultPart, Usage
from agentadapter.testing import FunctionBackend, offline_llm

_ids = itertools.count(1)


def call(tool_name: str, /, **arguments: Any) -> ToolCallPart:
    return ToolCallPart(f"call_{next(_ids)}", tool_name, arguments)


def reply(*parts: Part | str) -> Response:
    built = [TextPart(p) if isinstance(p, str) else p for p in parts]
    finish = "tool_calls" if any(isinstance(p, ToolCallPart) for p in built) else "stop"
    return Response(id="r", provider="script", model="m", parts=built, finish_reason=finish, usage=Usage(10, 5),
                    cost_usd=0.0)


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


def scripted(*answers: Any) -> tuple[Script, LLM, RunConfig]:
    script = Script(*answers)
    llm = offline_llm(backends={"script": script})
    return script, llm, RunConfig(llm=llm)


def tool_results(result: AgentResult) -> list[tuple[str, bool]]:
    return [(p.content, p.is_error) for m in result.messages if m.role == "tool" for p in m.parts
            if isinstance(p, ToolResultPart)]


@pytest.fixture
def audit() -> InMemoryToolAudit:
    return InMemoryToolAudit()
