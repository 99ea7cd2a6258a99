"""What the framework tests share: a priced facade over the offline test models, and a workflow runner.

``test/tools`` is given a price in the facade's own catalog view (not the process-wide catalog), so the
frameworks' calls cost something and the ledger's totals can be checked. A framework's package is
required: missing, its tests skip with the reason, except under ``CI=true`` where they must run.
"""

from __future__ import annotations

import importlib
import os
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentadapter import LLM
from agentadapter.orchestrator import Orchestrator

PRICES = {"input": 1.0, "output": 2.0}  # USD per million tokens


def need(module: str, extra: str) -> None:
    """Skip (fail under CI) when a framework's package is not installed."""
    try:
        importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed: pip install 'agentadapter[{extra}]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} - under CI the framework tests must run", pytrace=False)
        pytest.skip(message)


@pytest.fixture
async def priced_llm() -> AsyncIterator[LLM]:
    llm = LLM(config={"catalog": {"test/tools": {"pricing": PRICES}, "test/echo": {"pricing": PRICES}}})
    try:
        yield llm
    finally:
        await llm.aclose()


@dataclass
class Ran:
    result: Any
    events: list[Any] = field(default_factory=list)

    def agent(self, name: str) -> dict[str, Any]:
        return next(a for a in self.result.to_dict()["agents"] if a["name"] == name)

    def of_type(self, kind: str, agent: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == kind and e.agent == agent]


async def run_workflow(llm: LLM, directory: Path, module: str, code: str, workflow: str, task: str) -> Ran:
    """Write ``module``.py and a workflow file into ``directory``, run the workflow with our orchestrator."""
    (directory / f"{module}.py").write_text(textwrap.dedent(code), "utf-8")
    path = directory / "team.yaml"
    path.write_text(textwrap.dedent(workflow), "utf-8")
    events: list[Any] = []
    result = await Orchestrator(llm=llm).run_workflow(path, task, on_event=events.append)
    return Ran(result, events)


async def check_costed(llm: LLM, ran: Ran, framework_agent: str, tool: str) -> None:
    """The run completed; the framework's agent called its own tool and its calls were priced and ledgered."""
    assert ran.result.status == "completed", ran.result.to_dict()
    mine = ran.agent(framework_agent)
    assert mine["status"] == "completed"
    assert mine["usage"]["input_tokens"] > 0 and mine["usage"]["output_tokens"] > 0
    assert mine["cost_usd"] > 0
    calls = ran.of_type("tool_call", framework_agent)
    results = ran.of_type("tool_result", framework_agent)
    assert [c["name"] for c in calls] == [tool]
    assert results and results[0]["name"] == tool and not results[0]["is_error"]
    totals = await llm.usage(group_by=("model",))
    ledgered = sum(t.cost_usd for t in totals)
    assert ledgered == pytest.approx(ran.result.cost_usd)
    assert ran.result.cost_usd >= mine["cost_usd"]
