"""MassGen-shaped configs: the examples run with ``agentadapter run``, settings reach the request, the
ignored keys are reported, and tenants' data cannot use the shape (a MassGen backend may name a URL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from agentadapter.agents.factory import create_agent
from agentadapter.cli.run import register
from agentadapter.llm.errors import ConfigurationError
from agentadapter.orchestrator import Orchestrator, WorkflowError, load_workflow, massgen, parse_workflow
from agentadapter.orchestrator.massgen import AG2_MODULE, translate

from .conftest import Models

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "massgen"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)


@app.command()
def version() -> None:  # a second command, so that typer keeps "run" as a subcommand
    """Print nothing."""


runner = CliRunner()

# Each example: its agents, and whether it runs MassGen's way (parallel answers, then a vote).
CASES = {
    "three_agents.yaml": (["gemini2.5flash", "gpt5nano", "grok3mini"], True),
    "single_agent.yaml": (["claude_agent"], False),
    "timeouts.yaml": (["planner", "critic"], True),
    "reasoning_models.yaml": (["o4mini", "deepseek", "gemini_pro"], True),
    "named_strategy.yaml": (["drafter", "editor"], False),
}


def test_there_are_five_examples():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_example_runs_with_agentadapter_run(name: str):
    agents, votes = CASES[name]
    result = runner.invoke(app, ["run", str(EXAMPLES / name), "--input", "Which moon is largest?", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed"
    steps = data["agents"]
    assert [s["name"] for s in steps if s["phase"] == "run"] == agents
    phases = {s["phase"] for s in steps}
    assert ("vote" in phases) is votes
    if votes:
        assert "won the vote" in data["output"]
    else:
        assert data["output"] == "Which moon is largest?"
    assert "warning:" in result.stderr and "ui.display_type: ignored" in result.stderr


def test_every_ignored_key_is_reported_with_its_line():
    workflow = load_workflow(EXAMPLES / "three_agents.yaml")
    source = str(EXAMPLES / "three_agents.yaml")
    assert workflow.warnings == [
        f"{source}:11: agents[0].backend.enable_web_search: ignored (a MassGen backend option this runner does "
        "not implement)",
        f"{source}:16: agents[1].backend.text: ignored (a MassGen backend option this runner does not implement)",
        f"{source}:20: agents[1].backend.reasoning.summary: ignored (only reasoning.effort is sent)",
        f"{source}:27: ui.display_type: ignored (`agentadapter run` shows its own progress; use --json or "
        "--events for other output)",
        f"{source}:28: ui.logging_enabled: ignored (`agentadapter run` shows its own progress; use --json or "
        "--events for other output)",
    ]


def test_timeouts_become_limits_and_orchestrator_keys_are_reported():
    workflow = load_workflow(EXAMPLES / "timeouts.yaml")
    assert workflow.options.limits.timeout_s == 1800
    assert workflow.spec.strategy == "parallel" and workflow.spec.aggregate == "vote"
    ignored = [w.split(": ", 2)[1] for w in workflow.warnings]
    assert ignored == ["orchestrator.snapshot_storage", "orchestrator.agent_temporary_workspace", "ui.display_type"]


MASSGEN = """
agents:
  - id: careful
    backend: {type: fake, model: careful, temperature: 0.25, top_p: 0.5, max_completion_tokens: 300,
              reasoning: {effort: high}, seed: 11}
    system_message: You weigh every answer.
  - id: quick
    backend: {type: fake, model: quick, temperature: 1.0}
    system_message: You answer fast.
timeout_settings: {orchestrator_timeout_seconds: 90, initial_round_timeout_seconds: 30, fast_mode: true}
"""


async def test_backend_settings_and_system_message_reach_every_request(models: Models, orchestrator: Orchestrator):
    workflow = parse_workflow(MASSGEN, source="team.yaml")
    assert workflow.options.limits.timeout_s == 90 and workflow.options.step.timeout_s == 30
    assert workflow.warnings == [
        "team.yaml:10: timeout_settings.fast_mode: ignored (no counterpart; limits.timeout_s bounds the whole run)"
    ]
    result = await orchestrator.run_workflow(workflow, "Is 91 prime?")
    assert result.status == "completed", result.error
    careful, quick = models.seen["careful"], models.seen["quick"]
    assert len(careful) == 3 and len(quick) == 2  # answer, vote, present (the first agent wins the tie)
    for request in careful:
        assert (request.temperature, request.top_p, request.max_tokens, request.reasoning_effort, request.seed) == (
            0.25,
            0.5,
            300,
            "high",
            11,
        )
        assert request.messages[0].role == "system" and "You weigh every answer." in request.messages[0].text
    assert {r.temperature for r in quick} == {1.0}
    assert "You answer fast." in quick[0].messages[0].text


def test_a_named_strategy_wins_over_the_vote():
    workflow = parse_workflow(MASSGEN + "strategy: sequential\n")
    assert workflow.spec.strategy == "sequential" and workflow.spec.aggregate is None


def test_provider_aliases_of_massgen_types():
    workflow = parse_workflow("""
agents:
  - {id: a, backend: {type: claude, model: claude-sonnet-4-5}}
  - {id: b, backend: {type: grok, model: grok-3-mini}}
  - {id: c, backend: {type: openai, model: openai/gpt-4o-mini}}
""")
    assert [a.model for a in workflow.spec.agents] == [
        "anthropic/claude-sonnet-4-5",
        "xai/grok-3-mini",
        "openai/gpt-4o-mini",
    ]


def test_errors_point_at_the_line_the_user_wrote():
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(
            "agent:\n  id: solo\n  backend: {type: test, model: echo}\n  system_message: [not, text]\n",
            source="solo.yaml",
        )
    assert "solo.yaml:4: agents[0].instructions" in str(caught.value)


AG2 = "agents:\n  - {id: coder, backend: {type: ag2, agent_config: {name: coder}}}\n  - {id: b, backend: {type: test, model: echo}}\n"


def test_ag2_without_the_framework_agents_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(massgen, "ag2_available", lambda: False)
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(AG2, source="ag2.yaml")
    message = str(caught.value)
    assert "agents.0.backend.type: ag2" in message and AG2_MODULE in message


def test_ag2_maps_to_the_framework_agents(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(massgen, "ag2_available", lambda: True)
    with pytest.raises(WorkflowError, match="add ref: 'module:agent_or_factory' to this entry"):
        parse_workflow(AG2, source="ag2.yaml")
    translated = translate(yaml.safe_load(AG2.replace("{id: coder,", "{id: coder, ref: 'team:make_coder',")))
    assert translated.data["agents"][0] == {"name": "coder", "framework": "ag2", "ref": "team:make_coder"}
    with_message = translate(
        yaml.safe_load(AG2.replace("{id: coder,", "{id: coder, ref: 'team:make_coder', system_message: Code well.,"))
    )
    assert "instructions" not in with_message.data["agents"][0]
    assert (("agents", 0, "system_message"), "ignored (an AG2 agent's own settings apply)") in with_message.warnings
    assert translated.warnings == [
        (("agents", 0, "backend", "agent_config"), "ignored (the AG2 agent is the one the entry's ref: names)")
    ]


def test_tenant_data_cannot_use_the_massgen_shape():
    text = "agent:\n  id: solo\n  backend: {type: chatcompletion, model: m, base_url: 'http://10.0.0.1/v1'}\n"
    assert parse_workflow(text).spec.agents[0].backend == {
        "type": "chatcompletion",
        "model": "m",
        "base_url": "http://10.0.0.1/v1",
    }
    with pytest.raises(WorkflowError, match="agent: unknown key"):
        parse_workflow(text, interpolate=False, massgen=False)


def test_settings_in_a_seed_style_backend_reach_the_agent():
    agent = create_agent(
        {"id": "a", "backend": {"type": "test", "model": "echo", "temperature": 0.3}, "model_settings": {"top_p": 0.4}}
    )
    assert agent.model_settings.temperature == 0.3 and agent.model_settings.top_p == 0.4  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="backend key\\(s\\) temprature are unknown"):
        create_agent({"id": "a", "backend": {"type": "test", "model": "echo", "temprature": 0.3}})


async def test_a_backends_mcp_servers_are_declared_and_named() -> None:
    import sys

    from agentadapter.testing import offline_llm
    from fakes.mcp_server import SCRIPT

    text = f"""
agent:
  id: caller
  backend:
    type: test
    model: tools
    mcp_servers:
      - {{name: fake, type: stdio, command: {sys.executable!r}, args: [{SCRIPT!r}], security: {{level: high}}}}
"""
    workflow = parse_workflow(text, source="mcp.yaml")
    assert workflow.spec.mcp_servers == [{"name": "fake", "command": sys.executable, "args": [SCRIPT]}]
    assert workflow.spec.agents[0].mcp_servers == ["fake"]
    assert [w.split(": ", 2)[1] for w in workflow.warnings] == ["agent.backend.mcp_servers[0].security"]
    by_name = translate(
        {
            "agent": {
                "id": "c",
                "backend": {
                    "type": "test",
                    "model": "tools",
                    "mcp_servers": {"web": {"type": "streamable-http", "url": "https://mcp.example/mcp"}},
                },
            }
        }
    )
    assert by_name.data["mcp_servers"] == [{"name": "web", "url": "https://mcp.example/mcp"}]
    assert by_name.data["agents"][0]["mcp_servers"] == ["web"]
    events = []
    tools_only = parse_workflow(text.replace("security: {level: high}}", "tools: [add]}"), source="mcp.yaml")
    result = await Orchestrator(llm=offline_llm()).run_workflow(tools_only, "add", on_event=events.append)
    assert result.status == "completed", result.error
    assert [e.data["name"] for e in events if e.type == "tool_call"] == ["fake__add"]
