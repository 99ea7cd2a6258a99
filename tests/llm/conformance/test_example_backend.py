"""docs/backends.md's worked example stays true: the Acme backend passes the conformance kit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "custom_backend.py"


async def test_the_worked_example_passes_the_kit():
    spec = importlib.util.spec_from_file_location("custom_backend_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = await module.main()
    assert report.passed, str(report)

    from agentadapter.llm.backends.base import backend_class

    assert backend_class("acme") is module.AcmeBackend  # registered by name, usable as `type: acme`
