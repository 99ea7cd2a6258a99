"""The orchestrator's public surface and its place in the layering."""

from __future__ import annotations

import ast
from pathlib import Path

import agentadapter.cli.run as cli_run
import agentadapter.orchestrator as orchestrator

SOURCE = Path(orchestrator.__file__).parent


def test_all_is_sorted_and_complete():
    assert orchestrator.__all__ == sorted(orchestrator.__all__)
    for name in orchestrator.__all__:
        assert getattr(orchestrator, name) is not None


def _imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return modules


def test_the_orchestrator_imports_only_lower_layers():
    forbidden = ("agentadapter.server", "agentadapter.store", "agentadapter.workers", "agentadapter.cli")
    for path in SOURCE.rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(forbidden), f"{path.name} imports {module}"


def test_every_module_starts_with_a_docstring_and_stays_small():
    for path in [*SOURCE.rglob("*.py"), Path(cli_run.__file__)]:
        text = path.read_text()
        assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
        assert text.count("\n") <= 800, f"{path} is over 800 lines"
