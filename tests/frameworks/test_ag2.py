"""AG2 agents in our workflows, on our offline models: their tool is called, usage and cost are ours."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.frameworks.conftest import check_costed, need, run_workflow

from agentadapter import LLM

AGENT = '''
from ag2 import Agent, tool

from agentadapter.frameworks.ag2 import AgentAdapterConfig


@tool
def convert(amount: float) -> str:
    """Convert euros to dollars."""
    return f"{amount * 1.5:.2f} USD"


cashier = Agent("cashier", "You convert money.", config=AgentAdapterConfig("test/tools"), tools=[convert])
plain = Agent("plain", "You convert money.", tools=[convert])  # no config: the workflow's model: is used
'''


@pytest.fixture(autouse=True)
def _installed() -> None:
    need("ag2", "ag2")


async def test_an_ag2_agent_runs_beside_our_agent_on_our_models(priced_llm: LLM, tmp_path: Path) -> None:
    workflow = """
strategy: sequential
agents:
  - {name: cashier, framework: ag2, ref: "money:cashier"}
  - {name: writer, model: test/echo}
"""
    ran = await run_workflow(priced_llm, tmp_path, "money", AGENT, workflow, "Convert 10 euros")
    await check_costed(priced_llm, ran, "cashier", "convert")
    assert "1.50 USD" in ran.agent("cashier")["output"]
    assert "1.50 USD" in ran.result.output
    assert "1.50 USD" in "".join(e["text"] for e in ran.of_type("token", "cashier"))


async def test_the_workflows_model_runs_an_ag2_agent_built_without_one(priced_llm: LLM, tmp_path: Path) -> None:
    workflow = """
strategy: parallel
agents:
  - {name: plain, framework: ag2, ref: "money2:plain", model: test/tools}
  - {name: echo, model: test/echo}
"""
    ran = await run_workflow(priced_llm, tmp_path, "money2", AGENT, workflow, "Convert 2 euros")
    await check_costed(priced_llm, ran, "plain", "convert")


def test_our_client_keeps_ag2s_client_protocol() -> None:
    from ag2.config import LLMClient

    from agentadapter.frameworks.ag2 import AgentAdapterConfig

    config = AgentAdapterConfig("test/tools")
    assert isinstance(config.create(), LLMClient)
    assert config.copy().model == "test/tools"
