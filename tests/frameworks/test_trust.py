"""Agents of other frameworks come from operators' files only: a tenant's workflow naming one is refused."""

from __future__ import annotations

import pytest

from agentadapter.service.errors import InvalidInput
from agentadapter.service.trust import check_workflow_entries


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "g", "framework": "langgraph", "ref": "my_graphs:build"},
        {"name": "g", "framework": "openai-agents"},
    ],
)
def test_a_tenants_workflow_may_not_name_a_framework_agent(entry: dict[str, str]) -> None:
    spec = {"agents": [{"name": "ok", "model": "test/echo"}, entry]}
    with pytest.raises(InvalidInput) as caught:
        check_workflow_entries(spec, "spec")
    assert caught.value.param == "spec.agents[1].framework"
    assert caught.value.code == "framework_not_allowed"
    assert "workflow files only" in caught.value.message
