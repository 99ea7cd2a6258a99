"""docs/agents.md runs as written: every Python snippet, in order, against a loopback OpenAI-style provider.

The snippets name ``openai/gpt-4o-mini``; ``OPENAI_BASE_URL`` points it at a fake on 127.0.0.1 (no key,
no network). ``my_agents/reviewer.py`` holds the ``Reviewer`` class the page defines, as the page says.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.fakes.openai_server import OpenAIFake

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "agents.md"
RUNNER = Path(__file__).with_name("run_agents_md.py")


async def test_every_snippet_runs_in_order(tmp_path: Path) -> None:
    snippets = re.findall(r"^```python\n(.*?)^```", PAGE.read_text("utf-8"), flags=re.S | re.M)
    reviewer = next(code for code in snippets if "class Reviewer(BaseAgent)" in code)
    (tmp_path / "my_agents").mkdir()
    (tmp_path / "my_agents" / "reviewer.py").write_text(reviewer)
    async with OpenAIFake() as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTADAPTER_", "AGENT_"))}
        env.update({
            "OPENAI_BASE_URL": f"{fake.url}/v1", "OPENAI_API_KEY": "sk-test",
            "AGENT_ONLINE_ENDPOINTS": "gpu=http://127.0.0.1:9/v1", "GPU_KEY": "gpu-key",
            "AGENTADAPTER_DATA_DIR": str(tmp_path / "data"),
            "PYTHONPATH": str(tmp_path),  # an interactive session has its directory on the path
        })
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(RUNNER), str(PAGE), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    text = output.decode()
    assert process.returncode == 0, text
    assert f"snippet {len(snippets)}: ok" in text, text
    assert "Unclosed" not in text, text
    assert fake.requests, "no snippet reached the provider"
