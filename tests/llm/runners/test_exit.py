"""A process that ran an MLX model exits cleanly, and a model's owner thread is reused, never ended.

MLX keeps a thread-local compile cache whose destructor releases Python objects; when the model's
thread ended while the interpreter shut down, the process aborted ("terminate called without an
active exception", exit 134) in about one run of three. These tests run a LocalAgent in a fresh
interpreter several times and require every run to exit 0, and check the owner-thread lifecycle
that prevents it with a scripted runner.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agentadapter.llm.runners.testing import ScriptedRunner

from .conftest import MLX, require

_ANSWER_AND_EXIT = textwrap.dedent("""
    import asyncio, sys
    from agentadapter.agents import LocalAgent, RunConfig
    from agentadapter.testing import offline_llm

    async def main() -> None:
        agent = LocalAgent(model_id=sys.argv[1], runner="mlx",
                           generation_config={"max_new_tokens": 4, "temperature": 0})
        result = await agent.run("the quick brown fox", RunConfig(llm=offline_llm()))
        print("answered", result.status, result.usage.output_tokens, flush=True)

    asyncio.run(main())
""")


@pytest.mark.slow
def test_a_process_that_ran_an_mlx_model_exits_cleanly_every_time(tiny_model: Path, tmp_path: Path) -> None:
    require(*MLX)
    script = tmp_path / "answer_and_exit.py"
    script.write_text(_ANSWER_AND_EXIT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # Five processes at once: each must answer and exit cleanly (the crash this guards against came at
    # exit, now and then); side by side they take the time of one or two, not of five in a row.
    processes = [subprocess.Popen([sys.executable, str(script), str(tiny_model)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for _ in range(5)]
    outcomes = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=300)
            outcomes.append((process.returncode, out.strip(), err[-400:]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [code for code, _, _ in outcomes] == [0] * 5, outcomes
    assert all(out.startswith("answered completed") for _, out, _ in outcomes), outcomes
    assert not any("terminate called" in err for _, _, err in outcomes)


class _OwnedScriptedRunner(ScriptedRunner):
    thread_outlives_model = True


async def test_an_owner_thread_is_handed_back_at_cleanup_and_reused() -> None:
    first = _OwnedScriptedRunner(script=["one"])
    await first.load("a")
    assert (await first.generate("hi")).text == "one"
    owner = first._executor
    assert owner is not None
    thread = owner.thread  # type: ignore[union-attr]
    assert thread.daemon and thread.is_alive()
    await first.cleanup()
    assert first.tokenizer is None  # unloaded on its thread
    assert thread.is_alive()  # never ended: its engine's thread-exit destructors never run at shutdown

    second = _OwnedScriptedRunner(script=["two"])
    await second.load("b")
    assert second._executor is owner and (await second.generate("hi")).text == "two"
    ran_on: list[threading.Thread] = []
    await second.count_tokens("x")
    second._executor.submit(lambda: ran_on.append(threading.current_thread())).result()
    assert ran_on == [thread]
    await second.cleanup()


async def test_a_failing_job_on_an_owner_thread_reaches_its_caller_and_the_thread_goes_on() -> None:
    runner = _OwnedScriptedRunner(script=["fine"])
    await runner.load("a")
    assert runner._executor is not None

    def fail() -> None:
        raise RuntimeError("engine said no")

    with pytest.raises(RuntimeError, match="engine said no"):
        runner._executor.submit(fail).result()
    assert (await runner.generate("hi")).text == "fine"
    await runner.cleanup()
