"""Nested workflows: a workflow file's ``workflow:`` step runs another workflow, whose events, usage and
cost are nested under the parent run; cycles and bad steps are refused; a workflow can be a tool."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agentadapter.agents import LLMAgent
from agentadapter.cli.run import register
from agentadapter.orchestrator import Orchestrator, RunOptions, WorkflowError, load_workflow
from agentadapter.orchestrator.nested import WorkflowAgent, workflow_tool
from agentadapter.testing import offline_llm

SPENDERS = '''
from agentadapter.agents import AgentResult, BaseAgent
from agentadapter.llm.messages import Usage


class Spender(BaseAgent):
    """Answers with its name and costs cost_usd."""

    def __init__(self, cost_usd: float = 0.0, fail: bool = False) -> None:
        super().__init__()
        self.cost_usd = cost_usd
        self.fail = fail

    async def execute(self, context):
        if self.fail:
            raise RuntimeError("this agent always fails")
        return AgentResult(output=f"{self.name}({context.input_text})", usage=Usage(10, 5), cost_usd=self.cost_usd)
'''


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), "utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> Path:
    # A module name of its own per test directory, so that tests in one process never share a cached import.
    write(tmp_path, f"spenders_{tmp_path.name.replace('-', '_')}.py", SPENDERS)
    return tmp_path


def spender(files: Path, cost: float, fail: bool = False) -> str:
    module = f"spenders_{files.name.replace('-', '_')}"
    return f'{{ref: "{module}:Spender", params: {{cost_usd: {cost}, fail: {str(fail).lower()}}}}}'


def parent_and_inner(files: Path) -> Path:
    write(
        files,
        "inner.yaml",
        f"""
        name: inner
        strategy: parallel
        agents:
          - {{name: a, {spender(files, 0.2)[1:-1]}}}
          - {{name: b, {spender(files, 0.3)[1:-1]}}}
    """,
    )
    return write(
        files,
        "parent.yaml",
        f"""
        name: parent
        agents:
          - {{name: first, {spender(files, 0.1)[1:-1]}}}
          - {{name: team, workflow: inner.yaml, description: the inner team}}
          - {{name: last, {spender(files, 0.05)[1:-1]}}}
    """,
    )


async def test_a_nested_workflows_cost_and_usage_add_up_in_the_parent_run(files: Path):
    workflow = load_workflow(parent_and_inner(files))
    assert isinstance(workflow.agents["team"], WorkflowAgent)
    events = []
    result = await Orchestrator().run_workflow(workflow, "go", on_event=events.append)
    assert result.status == "completed", result.error
    assert [(a.name, round(a.cost_usd, 6)) for a in result.agents] == [("first", 0.1), ("team", 0.5), ("last", 0.05)]
    assert result.cost_usd == pytest.approx(0.65)
    assert result.usage.input_tokens == 40 and result.usage.output_tokens == 20
    assert result.output.startswith("last(") and "a(first(go))" in result.output and "b(first(go))" in result.output
    nested = [e for e in events if e.type == "nested"]
    assert {e.agent for e in nested} == {"team"} and {e.data["workflow"] for e in nested} == {"inner"}
    inner_types = [e.data["event"]["type"] for e in nested]
    assert inner_types[0] == "run_started" and inner_types[-1] == "run_finished"
    finished = [e.data["event"] for e in nested if e.data["event"]["type"] == "agent_finished"]
    assert sorted((f["agent"], f["data"]["cost_usd"]) for f in finished) == [("a", 0.2), ("b", 0.3)]
    assert len({e.data["run_id"] for e in nested}) == 1 and nested[0].data["run_id"] != result.run_id


async def test_a_failed_nested_run_fails_the_step_and_still_charges_what_it_spent(files: Path):
    write(
        files,
        "inner.yaml",
        f"""
        agents:
          - {{name: a, {spender(files, 0.2)[1:-1]}}}
          - {{name: boom, {spender(files, 0.0, fail=True)[1:-1]}}}
        retry: {{max_retries: 0}}
    """,
    )
    parent = write(
        files,
        "parent.yaml",
        """
        agents:
          - {name: team, workflow: inner.yaml}
        retry: {max_retries: 0}
    """,
    )
    result = await Orchestrator().run_workflow(load_workflow(parent), "go")
    assert result.status == "failed"
    assert "nested workflow 'inner' (step 'team') ended failed" in result.error["message"]
    assert result.cost_usd == pytest.approx(0.2)


async def test_the_parents_budget_bounds_the_nested_run(files: Path):
    workflow = load_workflow(parent_and_inner(files))
    result = await Orchestrator().run_workflow(workflow, "go", options=RunOptions().with_limits(max_cost_usd=0.3))
    assert result.status == "failed"
    team = next(a for a in result.agents if a.name == "team")
    assert team.status == "failed" and "max_cost_usd" in team.error["message"]


def test_workflows_that_include_each_other_are_refused(files: Path):
    write(files, "a.yaml", "agents:\n  - {name: x, workflow: b.yaml}\n")
    write(files, "b.yaml", "agents:\n  - {name: y, workflow: a.yaml}\n")
    with pytest.raises(WorkflowError, match=r"cycle \(a.yaml -> b.yaml -> a.yaml\)"):
        load_workflow(files / "a.yaml")


def test_a_workflow_step_is_not_a_model_agent(files: Path):
    write(files, "inner.yaml", "agents:\n  - {name: x, model: test/echo}\n")
    path = write(files, "p.yaml", "agents:\n  - {name: t, workflow: inner.yaml, model: test/echo}\n")
    with pytest.raises(WorkflowError, match=r"p.yaml:2: agents\[0\].model: a workflow: step runs another workflow"):
        load_workflow(path)
    missing = write(files, "m.yaml", "agents:\n  - {name: t, workflow: nowhere.yaml}\n")
    with pytest.raises(WorkflowError, match=r"m.yaml:2: agents\[0\].workflow: the nested workflow is not usable"):
        load_workflow(missing)


async def test_an_agent_calls_a_workflow_as_a_tool(files: Path):
    inner = load_workflow(parent_and_inner(files).with_name("inner.yaml"))
    caller = LLMAgent("caller", model="test/tools", tools=[workflow_tool(WorkflowAgent("ask_team", inner))])
    result = await caller.run("go", _config())
    assert [call.name for call in result.tool_calls] == ["ask_team"]
    assert result.cost_usd == pytest.approx(0.5)  # the nested run's cost counts toward the caller's


def _config():
    from agentadapter.agents import RunConfig

    return RunConfig(llm=offline_llm())


def test_agentadapter_run_shows_the_nested_cost(files: Path):
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app.command()(lambda: None)
    result = CliRunner().invoke(app, ["run", str(parent_and_inner(files)), "--input", "go", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["cost_usd"] == pytest.approx(0.65)
    assert [a["name"] for a in data["agents"]] == ["first", "team", "last"]
