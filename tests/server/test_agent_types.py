"""``GET /v1/agent-types`` and tenants' workflows that name the operator's custom agent types by name."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentadapter.agents import AgentLoader
from agentadapter.service.agent_types import use_operator_loader
from server.conftest import Api

AGENT = '''
from agentadapter.agents import AgentResult, BaseAgent


class {cls}(BaseAgent):
    """Greets whoever the input names."""

    CAPABILITIES = ("greeting",)

    async def execute(self, context):
        return AgentResult(output=f"{greeting}, {{context.input_text}}")
'''


def write(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(textwrap.dedent(text), "utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def agents_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "operator_agents"
    directory.mkdir()
    write(directory, "welcomer.py", AGENT.format(cls="Welcomer", greeting="welcome"))
    write(directory, "broken.py", "this is not python (")
    use_operator_loader(AgentLoader(directory, entry_points=False, development=False).load())
    yield directory
    use_operator_loader(None)


async def types(api: Api) -> dict[str, dict[str, object]]:
    response = await api.request("GET", "/v1/agent-types", as_="viewer")
    assert response.status_code == 200, response.text
    return {t["name"]: t for t in response.json()["data"]}


async def test_agent_types_list_the_operators_agents_and_find_new_and_fixed_files(api: Api, agents_dir: Path) -> None:
    listed = await types(api)
    assert set(listed) == {"llm", "welcomer"}
    assert listed["welcomer"] == {
        "object": "agent_type",
        "name": "welcomer",
        "agent_type": "custom",
        "capabilities": ["greeting"],
        "description": "Greets whoever the input names.",
        "builtin": False,
    }
    assert listed["llm"]["builtin"] is True
    write(agents_dir, "added.py", AGENT.format(cls="Added", greeting="hi"))
    write(agents_dir, "broken.py", AGENT.format(cls="Fixed", greeting="hey"))
    assert set(await types(api)) == {"llm", "welcomer", "added", "fixed"}


async def test_a_tenants_workflow_names_an_agent_type_by_name_only(api: Api, agents_dir: Path) -> None:
    created = await api.request(
        "POST",
        "/v1/workflows",
        json={
            "name": "greet",
            "spec": {"agents": [{"name": "door", "type": "welcomer"}, {"name": "echo", "model": "test/echo"}]},
        },
    )
    assert created.status_code == 201, created.text
    started = await api.request("POST", "/v1/runs", json={"workflow_id": created.json()["id"], "input": "Ada"})
    run = await api.wait_run(started.json()["id"])
    assert run["status"] == "completed", run.get("error")
    assert [a["output"] for a in run["agents"]] == ["welcome, Ada", "welcome, Ada"]

    for entry, param, code in (
        ({"name": "door", "type": "welcomer", "params": {"x": 1}}, "spec.agents[0].params", "key_not_allowed"),
        ({"name": "door", "type": "welcomer", "model": "test/echo"}, "spec.agents[0].model", "key_not_allowed"),
        ({"name": "door", "type": "stranger"}, "spec.agents[0].type", "type_not_allowed"),
    ):
        response = await api.request("POST", "/v1/workflows", json={"name": "bad", "spec": {"agents": [entry]}})
        assert response.status_code == 422, response.text
        assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)
