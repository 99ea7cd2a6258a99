"""``agentadapter run``: live progress and table, --json, --events, and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agentadapter.cli.run import register

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)


@app.command()
def version() -> None:  # a second command, so that typer keeps "run" as a subcommand
    """Print nothing."""


runner = CliRunner()


def run(*args: str, input: str | None = None):
    return runner.invoke(app, ["run", *args], input=input)


def test_live_progress_table_and_output():
    result = run(str(EXAMPLES / "research_team.yaml"), "--input", "Why is the sky blue?")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Why is the sky blue?"
    for name in ("researcher", "writer", "reviewer"):
        assert name in result.stderr
    assert "completed" in result.stderr and "tokens in/out" in result.stderr and "cost $" in result.stderr


def test_json_prints_the_run_result():
    result = run(str(EXAMPLES / "support_router.yaml"), "--json", "--project", "p7")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and data["project_id"] == "p7"
    assert [a["name"] for a in data["agents"]] == ["triage", "billing"]
    assert set(data) >= {"run_id", "output", "agents", "usage", "cost_usd", "duration_ms"}


def test_events_prints_json_lines():
    result = run(str(EXAMPLES / "panel_vote.yaml"), "--events", "-i", "Pick one")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert any(e["type"] == "token" for e in events)


def test_events_and_json_together_end_with_the_result():
    result = run(str(EXAMPLES / "draft_review.yaml"), "--events", "--json")
    lines = result.stdout.splitlines()
    assert json.loads(lines[-2])["type"] == "run_finished" and json.loads(lines[-1])["status"] == "completed"


def test_input_from_stdin_and_model_overrides():
    result = run(str(EXAMPLES / "research_team.yaml"), "-i", "-", "--model", "test/tools", "--model",
                 "writer=test/echo", "--json", input="from stdin")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["input"] == "from stdin" and data["output"] == "from stdin"


def test_a_run_that_hits_a_limit_exits_1():
    result = run(str(EXAMPLES / "research_team.yaml"), "--max-steps", "1")
    assert result.exit_code == 1
    assert "limits.max_steps" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml"], "cannot read workflow file"),
        ([str(EXAMPLES / "research_team.yaml"), "--model", "openai/gpt-4o-mini"], "OPENAI_API_KEY is not set"),
    ],
)
def test_usage_errors_exit_2(args, message, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_a_bad_workflow_names_its_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nagents:\n  - {name: a, model: test/echo, tool: [x]}\n")
    result = run(str(path), "-i", "hi")
    assert result.exit_code == 2
    assert f"{path}:3: agents[0].tool: unknown key" in result.stderr


def test_a_workflow_without_input_needs_one(tmp_path: Path):
    path = tmp_path / "no_input.yaml"
    path.write_text("agents: [{name: a, model: test/echo}]\n")
    result = run(str(path))
    assert result.exit_code == 2 and "--input" in result.stderr


def test_every_unusable_model_is_reported_at_once(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = tmp_path / "models.yaml"
    path.write_text("name: m\nagents:\n  - {name: a, model: nope/x}\n  - {name: b, model: openai/gpt-4o-mini}\n"
                    "  - {name: c, model: test/echo}\n")
    result = run(str(path), "-i", "hi")
    assert result.exit_code == 2, result.output
    assert "agent 'a': unknown provider 'nope'" in result.stderr
    assert "agent 'b': OPENAI_API_KEY is not set" in result.stderr
    assert "agent 'c'" not in result.stderr
