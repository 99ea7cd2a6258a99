"""``agentadapter embed``: vectors printed (a summary or --json) from a provider's fake, and its exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner, Result

from agentadapter.cli import app
from fakes.embedding import fake_tokens, fake_vector
from fakes.openai_server import OpenAIFake

runner = CliRunner()


def config_for(fake: OpenAIFake, tmp_path: Path) -> str:
    config = tmp_path / "agentadapter.yaml"
    config.write_text(f"backends:\n  openai: {{type: openai, base_url: '{fake.url}/v1', api_key: sk-test}}\n")
    return str(config)


async def invoke(*args: str, input: str | None = None) -> Result:
    # The command runs its own event loop: off this test's loop, where the fake answers.
    return await asyncio.to_thread(runner.invoke, app, list(args), input=input)


async def test_embed_json_prints_every_vector(tmp_path: Path) -> None:
    async with OpenAIFake() as fake:
        result = await invoke("embed", "openai/text-embedding-3-small", "first", "second", "--json",
                              "--dimensions", "4", "--config", config_for(fake, tmp_path))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["vectors"] == [fake_vector("text-embedding-3-small", t, 4) for t in ("first", "second")]
    assert data["dimensions"] == 4 and data["provider"] == "openai"
    assert data["usage"]["input_tokens"] == fake_tokens("first") + fake_tokens("second")
    assert data["cost_usd"] > 0 and data["cached"] is False


async def test_embed_prints_a_summary_and_reads_stdin(tmp_path: Path) -> None:
    async with OpenAIFake() as fake:
        result = await invoke("embed", "openai/text-embedding-3-small", "-", "--config", config_for(fake, tmp_path),
                              input="from stdin")
        assert fake.last.json["input"] == ["from stdin"]
    assert result.exit_code == 0, result.output
    first = fake_vector("text-embedding-3-small", "from stdin", 8)[0]
    assert f"'from stdin': [{first:.4f}" in result.stdout
    assert "1 vectors of 8 dimensions" in result.output


async def test_embed_exit_codes(tmp_path: Path) -> None:
    async with OpenAIFake() as fake:
        config = config_for(fake, tmp_path)
        empty = await invoke("embed", "openai/text-embedding-3-small", "", "--config", config)
        assert empty.exit_code == 2 and "input 0 is empty" in empty.output and "Traceback" not in empty.output
        fake.fail(500, {"error": {"message": "down"}}, times=3)
        down = await invoke("embed", "openai/text-embedding-3-small", "x", "--config", config)
        assert down.exit_code == 1 and "Traceback" not in down.output
        no_embeddings = await invoke("embed", "groq/llama", "x")
        assert no_embeddings.exit_code != 0
