"""The agent layer's public surface and its place in the layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import agentadapter.agents as agents

SOURCE = Path(agents.__file__).parent


def test_all_is_sorted_and_complete():
    assert agents.__all__ == sorted(agents.__all__)
    for name in agents.__all__:
        assert getattr(agents, name) is not None


def test_agents_import_only_lower_layers():
    forbidden = ("agentadapter.orchestrator", "agentadapter.server", "agentadapter.store", "agentadapter.workers",
                 "agentadapter.cli")
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(forbidden), f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(forbidden), f"{path.name} imports {alias.name}"


def test_every_module_starts_with_a_docstring_and_stays_small():
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
        assert text.count("\n") <= 800, f"{path} is over 800 lines"


def test_a_plain_run_needs_no_protocol():
    code = (
        "import sys, asyncio\n"
        "from agentadapter.agents import LLMAgent, RunConfig\n"
        "from agentadapter.testing import offline_llm\n"
        "result = asyncio.run(LLMAgent('a', model='test/echo').run('hi', RunConfig(llm=offline_llm())))\n"
        "assert result.output == 'hi'\n"
        "print('agentadapter.protocol' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
