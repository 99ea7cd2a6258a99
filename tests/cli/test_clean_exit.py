"""No command leaves a connection pool open at exit ("Unclosed client session" on stderr)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from tests.fakes.openai_server import OpenAIFake


async def _cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTADAPTER_"))}
    env["AGENTADAPTER_DATA_DIR"] = str(cwd / "data")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentadapter.cli", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", [
    ["chat", "fake/gpt-4o-mini", "hello", "--json"],
    ["chat", "fake/gpt-4o-mini", "hello"],
    ["cost", "hello", "--models", "fake/gpt-4o-mini", "--run"],
    ["health", "fake/gpt-4o-mini"],
    ["run", "workflow.yaml", "--input", "hello"],
], ids=lambda command: " ".join(command[:2]))
async def test_commands_close_their_connections(command: list[str], tmp_path: Path) -> None:
    async with OpenAIFake() as fake:
        (tmp_path / "agentadapter.yaml").write_text(
            f"backends:\n  fake: {{type: openai, base_url: '{fake.url}/v1', api_key: sk-test}}\n")
        (tmp_path / "workflow.yaml").write_text(
            "name: one\nagents:\n  - {name: only, model: fake/gpt-4o-mini, instructions: Answer.}\n")
        code, out, err = await _cli(*command, cwd=tmp_path)
        assert code == 0, out + err
        assert fake.requests, "the command never reached the provider"
        assert "Unclosed" not in err and "unclosed" not in err, err
