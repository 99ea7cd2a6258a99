"""A model without a known price costs ``unknown`` in the run's table and live lines, never ``0``."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.fakes.openai_server import OpenAIFake


async def test_the_run_table_says_unknown_for_an_unpriced_model(tmp_path: Path) -> None:
    async with OpenAIFake() as fake:
        (tmp_path / "agentadapter.yaml").write_text(
            f"backends:\n  fake: {{type: openai, base_url: '{fake.url}/v1', api_key: sk-test}}\n")
        (tmp_path / "wf.yaml").write_text(
            "name: costs\nagents:\n  - {name: unpriced, model: fake/house-model, instructions: Answer.}\n"
            "  - {name: free, model: test/echo, instructions: Repeat.}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTADAPTER_", "OPENAI_"))}
        env["AGENTADAPTER_LOG_FORMAT"] = "text"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentadapter.cli", "run", "wf.yaml", "--input", "hello", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), timeout=120)
    text = err.decode()
    assert process.returncode == 0, text
    table = [line.split() for line in text.splitlines() if line[:1].isdigit() or line.strip().startswith("total")]
    rows = {cells[1] if cells[0].isdigit() else cells[0]: cells for cells in table}
    assert rows["unpriced"][5] == "unknown", text
    assert rows["free"][5] == "0", text
    assert rows["total"][-2] == "unknown", text
    assert "0.000000" not in text
