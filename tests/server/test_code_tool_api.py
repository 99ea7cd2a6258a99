"""The code tool through the API: available to tenants' agents only when the operator registers it, and
refused when the operator denies it to agents defined through the API."""

from __future__ import annotations

import os

import pytest

from agentadapter.agents import ToolRegistry
from agentadapter.agents.tools import sandbox
from agentadapter.agents.tools.code import PythonCode, code_policy
from server.conftest import AppFactory


async def code_tool() -> PythonCode:
    uid_range = None
    if os.geteuid() == 0:
        ok, why = await sandbox.probe_isolation("user", 1_900_000_000)
        if not ok:
            pytest.skip(f"the sandbox cannot switch to an unprivileged uid here: {why}")
        uid_range = (1_900_000_000, 1_900_000_255)
    ok, why = await sandbox.probe_isolation("network")
    if not ok:
        pytest.skip(f"this host cannot isolate the network: {why}")
    return PythonCode(code_policy(uid_range=uid_range))


async def test_a_stored_agent_runs_python_when_the_operator_enables_it(make_api: AppFactory) -> None:
    async with make_api() as api:  # the default registry: no run_python unless AGENTADAPTER_CODE_TOOL is set
        response = await api.request(
            "POST", "/v1/agents", json={"name": "coder", "model": "test/tools", "tools": ["run_python"]}
        )
        assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_tool"

    code = await code_tool()
    try:
        async with make_api(tools=ToolRegistry([code.as_tool()])) as api:
            agent = await api.create_agent(model="test/tools", tools=["run_python"])
            started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "compute"})
            run = await api.wait_run(started.json()["id"])
            assert run["status"] == "completed", run.get("error")
            assert run["output"].startswith("run_python: ") and '"exit_code"' in run["output"]

        async with make_api(
            tools=ToolRegistry([code.as_tool()]), server={"api_denied_tools": ["shell", "run_python"]}
        ) as api:
            response = await api.request(
                "POST", "/v1/agents", json={"name": "coder", "model": "test/tools", "tools": ["run_python"]}
            )
            assert response.status_code == 422 and response.json()["error"]["code"] == "tool_not_allowed"
    finally:
        await code.close()
