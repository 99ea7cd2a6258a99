"""The one drawing of the exception tree (``agentadapter.errors``) names every error of the package.

Every module is imported, then every subclass of ``AgentAdapterError`` defined in ``agentadapter.*``
must appear exactly once in the drawing, under one of its own bases, tagged with the module that
defines it, and marked ``[retryable]`` exactly when its ``retryable`` says so.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest

import agentadapter
from agentadapter import errors as error_root
from agentadapter.errors import AgentAdapterError

_NAME = re.compile(r"[A-Z]\w*")


def _import_everything() -> None:
    for module in pkgutil.walk_packages(agentadapter.__path__, "agentadapter."):
        if ".migrations" in module.name or module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)


def _all_errors() -> list[type[AgentAdapterError]]:
    found: list[type[AgentAdapterError]] = []
    pending: list[type[AgentAdapterError]] = [AgentAdapterError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("agentadapter.") and cls not in found:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _drawing() -> dict[str, tuple[str | None, str]]:
    """Each drawn class: (its drawn parent, the rest of its line)."""
    doc = inspect.getdoc(error_root) or ""
    block = textwrap.dedent(doc.split("::\n\n", 1)[1].split("\n\n", 1)[0])
    drawn: dict[str, tuple[str | None, str]] = {}
    parents: list[str] = []
    for line in block.splitlines():
        match = _NAME.search(line)
        assert match and match.start() % 4 == 0, f"cannot read this line of the drawing: {line!r}"
        assert set(line[:match.start()]) <= set("│├└─ "), f"a name should start this line: {line!r}"
        depth, name = match.start() // 4, match[0]
        assert name not in drawn, f"{name} is drawn twice"
        del parents[depth:]
        assert len(parents) == depth, f"{name} is indented deeper than its parent"
        drawn[name] = (parents[-1] if parents else None, line[match.end():])
        parents.append(name)
    return drawn


def test_the_drawing_names_every_error_under_its_base_in_its_module() -> None:
    _import_everything()
    errors = _all_errors()
    assert len(errors) > 60  # every layer's errors, not a part of them
    drawn = _drawing()
    missing = sorted(cls.__name__ for cls in errors if cls.__name__ not in drawn)
    assert not missing, f"errors missing from the drawing in agentadapter/errors.py: {missing}"
    by_name = {cls.__name__: cls for cls in errors}
    assert len(by_name) == len(errors), "two error classes share a name"
    stale = sorted(set(drawn) - set(by_name))
    assert not stale, f"the drawing names classes that no longer exist: {stale}"
    for name, (parent, rest) in drawn.items():
        cls = by_name[name]
        if parent is None:
            assert cls is AgentAdapterError
            continue
        bases = [base.__name__ for base in cls.__bases__]
        assert parent in bases, f"{name} is drawn under {parent}, but its bases are {bases}"
        module = cls.__module__.removeprefix("agentadapter.")
        assert rest.rstrip().endswith(f"[{module}]"), f"{name} should be tagged [{module}]: {rest!r}"


def test_every_error_declares_whether_it_is_retryable() -> None:
    _import_everything()
    drawn = _drawing()
    for cls in _all_errors():
        declared = inspect.getattr_static(cls, "retryable")
        rest = drawn[cls.__name__][1]
        if isinstance(declared, property):  # decided per instance (AllTargetsFailedError)
            assert "[retryable:" in rest, f"{cls.__name__}: say when it is retryable in the drawing"
            continue
        assert isinstance(declared, bool), f"{cls.__name__}.retryable is {declared!r}, not a bool"
        assert ("[retryable]" in rest) is declared, (
            f"{cls.__name__}.retryable is {declared}; the drawing {'lacks' if declared else 'has'} [retryable]")


def test_the_bottom_imports_no_layer_above_it() -> None:
    """config.py, observability/ and the error root import nothing above the bottom layer."""
    import ast
    from pathlib import Path

    root = Path(agentadapter.__file__).parent
    bottom = [root / "errors.py", root / "redis_connections.py", root / "config.py", *(root / "observability").glob("*.py")]
    allowed = ("agentadapter.errors", "agentadapter.redis_connections", "agentadapter.config", "agentadapter.observability")
    for path in bottom:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("agentadapter"):
                    assert name.startswith(allowed), f"{path.name} imports {name}, a higher layer"


def test_the_budget_store_raises_the_bottom_redis_error_not_the_protocols() -> None:
    from pathlib import Path

    source = (Path(agentadapter.__file__).parent / "llm" / "policy" / "redis_budget.py").read_text()
    assert "agentadapter.protocol" not in source


@pytest.mark.parametrize("name", ["GuardrailTripped", "MaxTurnsExceeded", "ConfigurationError", "RedisUnavailableError"])
def test_errors_are_defined_in_the_layer_that_raises_them(name: str) -> None:
    _import_everything()
    cls = {c.__name__: c for c in _all_errors()}[name]
    expected = {"GuardrailTripped": "agentadapter.agents.errors", "MaxTurnsExceeded": "agentadapter.agents.errors",
                "ConfigurationError": "agentadapter.errors", "RedisUnavailableError": "agentadapter.errors"}
    assert cls.__module__ == expected[name]
    if name != "RedisUnavailableError":
        assert getattr(agentadapter, name) is cls  # the public name stays
