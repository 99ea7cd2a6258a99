"""A program that never closes its LLM still closes its connections when asyncio.run ends."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.fakes.openai_server import OpenAIFake

ROOT = Path(__file__).resolve().parents[2]

# A script as the docs write them: the agents' shared default LLM, and an LLM() nobody closes.
SCRIPT = """
import asyncio
from agentadapter import LLM, LLMAgent

async def main():
    agent = LLMAgent("a", model="openai/gpt-4o-mini", instructions="Answer.")
    print("agent", (await agent.run("hi")).output)
    llm = LLM()
    print("llm", (await llm.generate("openai/gpt-4o-mini", "hello")).text)

asyncio.run(main())
asyncio.run(main())   # a second loop: each closes its own connections
"""


async def test_unclosed_llms_close_their_connections_when_the_loop_ends(tmp_path: Path) -> None:
    async with OpenAIFake() as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTADAPTER_"))}
        env.update(OPENAI_BASE_URL=f"{fake.url}/v1", OPENAI_API_KEY="sk-test", PYTHONDEVMODE="1")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SCRIPT, cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    assert out.decode().split() == ["agent", "hi", "llm", "hello"] * 2
    assert "Unclosed" not in err.decode(), err.decode()
    assert "Task was destroyed" not in err.decode(), err.decode()
    assert len(fake.requests) == 4


async def test_aclose_leaves_no_task_behind() -> None:
    async with OpenAIFake() as fake:
        from agentadapter.llm.client import LLM

        llm = LLM(config={"backends": {"fake": {"type": "openai", "base_url": f"{fake.url}/v1", "api_key": "k"}}},
                  environ={})
        await llm.generate("fake/gpt-4o-mini", "hi")
        await llm.aclose()
        await asyncio.sleep(0)  # let the cancelled closer finish
        left = [t for t in asyncio.all_tasks() if t.get_name().startswith("agentadapter-") and not t.done()]
        assert left == []
