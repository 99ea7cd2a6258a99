"""The public surface: a sorted, explicit __all__ whose names all load lazily."""

from __future__ import annotations

import subprocess
import sys

import agentadapter


def test_all_is_sorted_and_complete():
    assert agentadapter.__all__ == sorted(agentadapter.__all__)
    for name in agentadapter.__all__:
        assert getattr(agentadapter, name) is not None


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = agentadapter.Nope  # type: ignore[attr-defined]
    assert "LLM" in dir(agentadapter)


def test_import_is_light():
    # `import agentadapter` must not pull in the HTTP clients, pydantic or the CLI stack.
    code = (
        "import sys, agentadapter; heavy = [m for m in ('aiohttp', 'httpx', 'pydantic', 'typer', 'rich', 'yaml') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
