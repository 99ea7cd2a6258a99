"""``run_python``: Python in the shell sandbox - fresh workspace per call, limits enforced, no network, no
secrets in its environment, audited, and off unless the operator enables it."""

from __future__ import annotations

import ast
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agentadapter.agents import AgentContext, LLMAgent, RunConfig
from agentadapter.agents.tools import registry as registry_module
from agentadapter.agents.tools import sandbox
from agentadapter.agents.tools.audit import InMemoryToolAudit
from agentadapter.agents.tools.code import PythonCode, code_policy
from agentadapter.agents.tools.errors import CommandKilled, CommandRefused
from agentadapter.agents.tools.sandbox import SAFE_PATH
from agentadapter.config import get_settings
from agentadapter.testing import offline_llm

from .test_shell import usable_uid_range

pytestmark = pytest.mark.skipif(
    shutil.which("python3", path=SAFE_PATH) is None, reason=f"no python3 on {SAFE_PATH} for the code tool to run"
)

MakeCode = Callable[..., PythonCode]


@pytest.fixture
async def make_code(audit: InMemoryToolAudit) -> AsyncIterator[MakeCode]:
    made: list[PythonCode] = []
    uid_range = await usable_uid_range()

    def make(**limits: Any) -> PythonCode:
        tool = PythonCode(code_policy(uid_range=uid_range, **limits), audit=audit)
        made.append(tool)
        return tool

    yield make
    for tool in made:
        await tool.close()


def context(run_id: str = "run-1") -> AgentContext:
    return AgentContext(LLMAgent("coder"), run_id=run_id)


async def network_isolated() -> None:
    ok, why = await sandbox.probe_isolation("network")
    if not ok:
        pytest.skip(f"this host cannot isolate the network: {why}")


async def test_code_runs_in_a_fresh_workspace_each_call(make_code: MakeCode, audit: InMemoryToolAudit) -> None:
    await network_isolated()
    code = make_code()
    first = await code.run(
        "import os\nopen('left.txt', 'w').write('x')\nprint(sorted(os.listdir('.')))", context=context()
    )
    assert (first.exit_code, first.stdout.strip()) == (0, "['left.txt']")
    second = await code.run("import os\nprint(sorted(os.listdir('.')))", context=context())
    assert second.stdout.strip() == "[]"  # the same run, a new call: nothing left from the last one
    failing = await code.run("raise SystemExit('no')", context=context())
    assert failing.exit_code == 1 and "no" in failing.stderr
    assert [r.tool for r in audit.records] == ["run_python"] * 3
    assert audit.records[0].details["argv"] == ["python3", "-I", "-S", "-B", "-"]


async def test_only_the_standard_library_and_no_secrets(make_code: MakeCode, monkeypatch: pytest.MonkeyPatch) -> None:
    await network_isolated()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown")
    monkeypatch.setenv("AGENTADAPTER_SECRET_KEY", "never-shown-either")
    result = await make_code().run(
        "import os, sys\nprint(sorted(os.environ))\nprint(any('site-packages' in p for p in sys.path))\n"
        "import json; print(json.dumps(1))\ntry:\n    import pydantic\nexcept ImportError:\n    print('no pydantic')",
        context=context(),
    )
    lines = result.stdout.splitlines()
    names = ast.literal_eval(lines[0])
    assert "OPENAI_API_KEY" not in names and "AGENTADAPTER_SECRET_KEY" not in names
    assert set(names) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM", "LC_CTYPE"}
    assert lines[1:] == ["False", "1", "no pydantic"]


async def test_the_network_is_refused(make_code: MakeCode) -> None:
    await network_isolated()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        result = await make_code().run(
            f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n    print('connected')\n"
            "except OSError as exc:\n    print('refused', type(exc).__name__)",
            context=context(),
        )
    finally:
        listener.close()
    assert result.stdout.startswith("refused"), result.stdout
    assert result.sandbox["network_isolated"] is True


async def test_without_network_isolation_it_does_not_run(make_code: MakeCode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sandbox._PROBES, ("network", None), (False, "simulated: unshare not permitted"))
    with pytest.raises(CommandRefused, match="network"):
        await make_code().run("print('hi')", context=context())


async def test_limits_are_enforced(make_code: MakeCode) -> None:
    await network_isolated()
    code = make_code(
        wall_time_s=2.0, cpu_time_s=1, memory_bytes=64 * sandbox.MiB, max_output_bytes=1000, kill_output_bytes=200_000
    )
    with pytest.raises(CommandKilled) as spinning:
        await code.run("while True:\n    pass", context=context())
    assert spinning.value.reason in ("cpu_time", "wall_time")
    memory = await code.run(
        "try:\n    b = bytearray(512 * 1024 * 1024)\n    print('allocated')\n"
        "except MemoryError:\n    print('memory refused')",
        context=context(),
    )
    assert memory.stdout.strip() == "memory refused"
    chatty = await code.run("print('x' * 5000)", context=context())
    assert len(chatty.stdout) <= 1000 and any("truncated" in n or "bytes" in n for n in chatty.notes)
    with pytest.raises(CommandKilled) as flood:
        await code.run("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)", context=context())
    assert flood.value.reason == "output"


async def test_an_agent_calls_it(make_code: MakeCode) -> None:
    await network_isolated()
    agent = LLMAgent("coder", model="test/tools", tools=[make_code().as_tool()])
    result = await agent.run("compute", RunConfig(llm=offline_llm()))
    assert [c.name for c in result.tool_calls] == ["run_python"]


def test_off_unless_the_operator_enables_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_DEFAULT", None)
    get_settings.cache_clear()
    try:
        monkeypatch.delenv("AGENTADAPTER_CODE_TOOL", raising=False)
        assert "run_python" not in registry_module.default_registry()
        monkeypatch.setattr(registry_module, "_DEFAULT", None)
        monkeypatch.setenv("AGENTADAPTER_CODE_TOOL", "true")
        get_settings.cache_clear()
        assert "run_python" in registry_module.default_registry()
    finally:
        get_settings.cache_clear()
