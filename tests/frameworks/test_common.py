"""What the integrations share: the error naming a missing extra, and the SDK's shadowed package name."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from agentadapter.errors import ConfigurationError
from agentadapter.frameworks import require
from agentadapter.orchestrator.errors import WorkflowError
from agentadapter.orchestrator.workflow import load_workflow


def test_a_missing_framework_names_the_extra_that_installs_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "langgraph", None)  # as if it were not installed
    with pytest.raises(ConfigurationError) as caught:
        require("langgraph", "langgraph")
    assert "needs 'langgraph', which is not installed: pip install 'agentadapter[langchain]'" in str(caught.value)
    path = tmp_path / "wf.yaml"
    path.write_text("agents:\n  - {name: g, framework: langgraph, ref: 'graphs:build'}\n", "utf-8")
    with pytest.raises(WorkflowError, match=r"wf.yaml:2: agents\[0\] \(g\): .*pip install 'agentadapter\[langchain\]'"):
        _ = load_workflow(path).agents


def test_a_package_named_agents_that_shadows_the_sdk_is_reported() -> None:
    found = importlib.import_module("agents")
    if hasattr(found, "Runner"):
        pytest.skip("here 'agents' is the OpenAI Agents SDK itself (nothing shadows it)")
    from agentadapter.frameworks.openai_agents import sdk

    with pytest.raises(ConfigurationError, match="is not the OpenAI Agents SDK but shadows it"):
        sdk()
