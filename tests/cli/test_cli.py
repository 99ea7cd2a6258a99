"""The agentadapter CLI: chat (streamed and --json), backends, and its exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agentadapter.cli import app

runner = CliRunner()


def test_chat_streams_the_answer():
    result = runner.invoke(app, ["chat", "test/echo", "Hello there"])
    assert result.exit_code == 0, result.output
    assert "Hello there" in result.stdout


def test_chat_json_prints_the_response(tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG....")
    result = runner.invoke(
        app, ["chat", "test/echo", "hi", "--json", "--system", "be brief", "--image", str(png),
              "--max-tokens", "5", "--temperature", "0"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "hi" and data["provider"] == "test" and data["usage"]["input_tokens"] > 0


def test_chat_reads_stdin():
    result = runner.invoke(app, ["chat", "test/echo", "-"], input="from stdin")
    assert result.exit_code == 0 and "from stdin" in result.stdout


def test_usage_errors_exit_2_without_traceback(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = runner.invoke(app, ["chat", "openai/gpt-4o-mini", "hi"])
    assert result.exit_code == 2
    assert "OPENAI_API_KEY is not set" in result.output and "Traceback" not in result.output
    assert runner.invoke(app, ["chat"]).exit_code == 2
    assert runner.invoke(app, ["chat", "nope", "hi"]).exit_code == 2


def test_provider_errors_exit_1(tmp_path):
    config = tmp_path / "c.yaml"
    # Port 9 on loopback: nothing listens, so the call fails as a connection error.
    config.write_text("backends:\n  dead: {type: custom, base_url: 'http://127.0.0.1:9/v1'}\n")
    result = runner.invoke(app, ["chat", "dead/m", "hi", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "APIConnectionError" in result.output and "Traceback" not in result.output


def test_backends_table_and_json(monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    result = runner.invoke(app, ["backends", "--json"])
    assert result.exit_code == 0
    rows = {row["provider"]: row for row in json.loads(result.stdout)}
    assert rows["groq"]["key_set"] is True and rows["groq"]["key_env"] == "GROQ_API_KEY"
    assert rows["ollama"]["key_required"] is False
    table = runner.invoke(app, ["backends"])
    assert table.exit_code == 0 and "groq" in table.stdout


def test_models_table_and_json():
    result = runner.invoke(app, ["models", "--provider", "openai", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert "openai/gpt-4o-mini" in data and all(k.startswith("openai/") for k in data)
    assert data["openai/gpt-4o-mini"]["pricing"]["input"] > 0
    assert runner.invoke(app, ["models"]).exit_code == 0


def test_cost_estimates_without_keys_and_runs_offline(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = runner.invoke(app, ["cost", "Summarize Hamlet", "--models", "openai/gpt-4o-mini,test/echo", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["openai/gpt-4o-mini"]["estimated_usd"] > 0 and rows["test/echo"]["estimated_usd"] == 0
    ran = runner.invoke(app, ["cost", "hi", "--models", "test/echo,openai/gpt-4o-mini", "--run", "--json"])
    rows = {row["model"]: row for row in json.loads(ran.stdout)}
    assert rows["test/echo"]["actual_usd"] == 0.0 and rows["openai/gpt-4o-mini"]["error"] == "ConfigurationError"
    table = runner.invoke(app, ["cost", "hi", "--models", "test/echo", "--run"])
    assert table.exit_code == 0 and "test/echo" in table.stdout


def test_health_probes_each_target(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "backends:\n  dead: {type: custom, base_url: 'http://127.0.0.1:9/v1'}\n"
        "models:\n  smart: {strategy: failover, targets: [dead/m, test/echo]}\n"
    )
    result = runner.invoke(app, ["health", "--config", str(config), "--json"])
    assert result.exit_code == 1, result.output  # a target failed its probe: the command fails too
    assert "1 target(s) failed their probes: dead/m" in result.stderr
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["dead/m"]["last_error"] == "APIConnectionError" and data["test/echo"]["successes"] == 1
    table = runner.invoke(app, ["health", "test/echo"])
    assert table.exit_code == 0 and "test/echo" in table.stdout
    assert runner.invoke(app, ["health", "--config", str(tmp_path / "none.yaml")]).exit_code == 2


def test_cost_of_an_unpriced_model_shows_as_unknown_never_zero(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("backends:\n  mine: {type: custom, base_url: 'http://127.0.0.1:9/v1'}\n")
    result = runner.invoke(app, ["cost", "hi", "--models", "mine/in-house-7b", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["estimated_usd"] is None
    table = runner.invoke(app, ["cost", "hi", "--models", "mine/in-house-7b", "--config", str(config)])
    assert table.exit_code == 0 and "unknown" in table.stdout and "0.000000" not in table.stdout
