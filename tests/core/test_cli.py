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
