"""Workflows in YAML: validation with the path and line of each error, building, and the examples."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentadapter.agents import LLMAgent
from agentadapter.orchestrator import (
    Adaptive,
    Loop,
    Orchestrator,
    Parallel,
    Sequential,
    WorkflowError,
    load_workflow,
    parse_workflow,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def parse(text: str, **options):
    return parse_workflow(textwrap.dedent(text), source="team.yaml", **options)


def error_of(text: str) -> WorkflowError:
    with pytest.raises(WorkflowError) as caught:
        parse(text)
    return caught.value


def test_a_workflow_becomes_agents_a_strategy_and_options():
    workflow = parse("""
        name: team
        strategy: parallel
        aggregate: judge
        judge: boss
        quorum: 2
        agents:
          - {id: a, model: test/echo, instructions: "Be brief.", timeout_s: 5, retries: 0}
          - {name: b, model: test/echo}
          - {name: boss, model: test/echo}
        limits: {max_cost_usd: 1.5, max_steps: 9, timeout_s: 60}
        retry: {max_retries: 2, initial_delay_s: 0.1}
        agent_timeout_s: 30
        input: hello
    """)
    assert workflow.name == "team" and workflow.input == "hello"
    assert list(workflow.agents) == ["a", "b", "boss"]
    assert isinstance(workflow.agents["a"], LLMAgent) and workflow.agents["a"].instructions == "Be brief."
    assert workflow.strategy == Parallel("judge", judge="boss", quorum=2)
    options = workflow.options
    assert (options.limits.max_cost_usd, options.limits.max_steps, options.limits.timeout_s) == (1.5, 9, 60)
    assert options.step.timeout_s == 30 and options.step.max_retries == 2 and options.step.initial_delay_s == 0.1
    assert options.policy_for("a").timeout_s == 5 and options.policy_for("a").max_retries == 0
    assert options.policy_for("b") is options.step


def test_each_strategy_shape():
    adaptive = parse("""
        strategy: adaptive
        router: triage
        routes: [{from: triage, to: billing, when: "output contains 'invoice'"}, {to: END}]
        agents: [{name: triage, model: test/echo}, {name: billing, model: test/echo}]
    """).strategy
    assert isinstance(adaptive, Adaptive) and adaptive.routes[0].source == "triage"
    assert str(adaptive.routes[0].condition) == "output contains 'invoice'" and adaptive.routes[1].source is None
    loop = parse("""
        strategy: loop
        loop: {generator: w, evaluator: c, max_iterations: 4, until: "accepted(output)"}
        agents: [{name: w, model: test/echo}, {name: c, model: test/echo}]
    """).strategy
    assert isinstance(loop, Loop) and loop.max_iterations == 4
    sequential = parse("agents: [{name: a, model: test/echo}]")
    assert sequential.strategy == Sequential() and sequential.name == "team"


def test_errors_name_the_path_and_line():
    error = error_of("""
        name: t
        strategy: parallel
        agents:
          - {name: a, model: test/echo}
          - {name: b, modle: test/echo}
        limits: {max_cost_usd: -1}
    """)
    message = str(error)
    assert "team.yaml:6: agents[1].modle: unknown key" in message
    assert "team.yaml:7: limits.max_cost_usd: Input should be greater than 0" in message
    assert error.line == 6 and error.path == "agents[1].modle"


def test_references_and_conditions_are_checked_at_load():
    message = str(error_of("""
        strategy: adaptive
        router: triage
        routes:
          - {from: triage, to: bililng}
          - {from: triage, to: billing, when: "output contans 'x'"}
        agents: [{name: triage, model: test/echo}, {name: billing, model: test/echo}]
        aggregate: vote
    """))
    assert "team.yaml:5: routes[0].to: 'bililng' is not one of the workflow's agents (triage, billing)" in message
    assert "team.yaml:6: routes[1].when: condition" in message and "not a valid expression" in message
    assert "team.yaml:8: aggregate: applies to strategy parallel only" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("strategy: loop\nagents: [{name: a, model: test/echo}]", "team.yaml:1: strategy: a loop workflow needs loop:"),
        ("strategy: adaptive\nagents: [{name: a, model: test/echo}]", "needs router: <agent>, routes"),
        ("strategy: parallel\naggregate: judge\nagents: [{name: a, model: test/echo}]", "needs judge:"),
        ("strategy: parallel\nquorum: 3\nagents: [{name: a, model: test/echo}]", "team.yaml:2: quorum: the quorum is 3"),
        ("agents: [{name: a, model: test/echo}, {name: a, model: test/echo}]", "agents[1].name: the name 'a'"),
        ("agents: []", "agents: List should have at least 1 item"),
        ("name: x", "agents: required key is missing"),
        ("strategy: zigzag\nagents: [{name: a}]", "team.yaml:1: strategy: Input should be"),
        ("- a\n- b", "a workflow is a mapping"),
        ("agents: [{name: a\n", "team.yaml:2: not valid YAML"),
        ("strategy: loop\nloop: {generator: a, evaluator: a}\nagents: [{name: a, model: test/echo}]",
         "evaluator must be another agent"),
        ("agents: [{name: a, model: test/echo, instructions: '${NOT_SET_ANYWHERE_42}'}]",
         "team.yaml:1 (agents[0].instructions) uses ${NOT_SET_ANYWHERE_42} but NOT_SET_ANYWHERE_42 is not set"),
    ],
)
def test_invalid_workflows(text, expected):
    assert expected in str(error_of(text))


def test_environment_variables_are_interpolated(monkeypatch):
    monkeypatch.setenv("TEAM_MODEL", "test/tools")
    workflow = parse("agents: [{name: a, model: '${TEAM_MODEL}', instructions: '${TONE:-Be kind.}'}]")
    agent = workflow.agents["a"]
    assert isinstance(agent, LLMAgent) and agent.model == "test/tools" and agent.instructions == "Be kind."


def test_agents_that_cannot_be_built_name_their_entry():
    workflow = parse("""
        agents:
          - {name: a, model: test/echo}
          - {name: b, model: test/echo, tools: [no_such_tool]}
    """)
    with pytest.raises(WorkflowError, match=r"team.yaml:4: agents\[1\] \(b\):.*no_such_tool"):
        workflow.build_agents()


def test_every_agent_that_cannot_be_built_is_reported_at_once():
    workflow = parse_workflow(textwrap.dedent("""
        name: many
        agents:
          - {name: a, model: test/echo, instructions: Hi}
          - {name: c, model: test/echo, tools: [no_such_tool]}
          - {name: d, model: test/echo, handoffs: [ghost]}
          - {name: e, ref: "no_such_module_here:Nothing"}
    """))
    with pytest.raises(WorkflowError) as raised:
        _ = workflow.agents
    text = str(raised.value)
    assert text.startswith("workflow workflow is not valid:")
    lines = text.splitlines()[1:]
    assert len(lines) == 3, text
    assert "agents[1]: agent 'c': no tool named 'no_such_tool'" in lines[0] and ":5:" in lines[0]
    assert "agents[2].handoffs[0]: agent 'd': no agent named 'ghost'" in lines[1] and ":6:" in lines[1]
    assert "agents[3]: agent 'e': cannot import 'no_such_module_here:Nothing'" in lines[2]
    assert raised.value.line == 5


def test_ref_agents_load_from_the_workflow_directory(tmp_path: Path):
    (tmp_path / "my_team_agents.py").write_text(textwrap.dedent('''
        from agentadapter.agents import AgentResult, BaseAgent

        class Shouter(BaseAgent):
            """Shouts."""

            def __init__(self, suffix: str = "!") -> None:
                super().__init__()
                self.suffix = suffix

            async def execute(self, context):
                return AgentResult(output=context.input_text.upper() + self.suffix)
    '''))
    (tmp_path / "wf.yaml").write_text(textwrap.dedent("""
        name: shout
        agents:
          - {name: loud, ref: "my_team_agents:Shouter", params: {suffix: "!!"}}
        input: hi
    """))
    workflow = load_workflow(tmp_path / "wf.yaml")
    assert workflow.agents["loud"].name == "loud"


async def test_a_workflow_runs_with_its_own_options(tmp_path: Path, llm):
    path = tmp_path / "wf.yaml"
    path.write_text("agents: [{name: a, model: test/echo}, {name: b, model: test/echo}]\nlimits: {max_steps: 1}\n")
    result = await Orchestrator(llm=llm).run_workflow(path, "hello")
    assert result.status == "failed" and result.error["limit"] == "max_steps" and result.workflow == "wf"
    with pytest.raises(ValueError, match="needs an input"):
        await Orchestrator(llm=llm).run_workflow(path)


def test_models_can_be_replaced_for_inline_agents():
    workflow = parse("""
        agents:
          - {name: a, model: test/echo}
          - {name: b, backend: {type: claude, model: claude-sonnet-4-5}}
    """)
    swapped = workflow.with_models({"*": "test/tools", "a": "test/echo"})
    assert swapped.agents["a"].model == "test/echo" and swapped.agents["b"].model == "test/tools"
    assert getattr(swapped.agents["b"], "provider", None) is None  # the claude backend was dropped with its model
    assert workflow.with_models("test/tools").agents["a"].model == "test/tools"


def test_a_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(WorkflowError, match="cannot read workflow file"):
        load_workflow(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
async def test_the_examples_run_offline(path: Path, llm):
    workflow = load_workflow(path)
    assert workflow.input, f"{path.name} should carry a default input for the README demo"
    result = await Orchestrator(llm=llm).run_workflow(workflow)
    assert result.status == "completed", result.error
    assert result.output and result.steps >= 2


def test_every_strategy_has_an_example():
    strategies = {load_workflow(p).spec.strategy for p in EXAMPLES.glob("*.yaml")}
    assert strategies == {"sequential", "parallel", "adaptive", "loop"}
