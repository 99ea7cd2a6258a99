"""RAG by default: agents built from a tenant's data get file_search over the archives of its settings, cite
what they found in a run, can turn it off, and workflows name archives per agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter.llm.messages import Request, ToolCallPart, ToolResultPart
from agentadapter.testing import FunctionBackend, offline_llm
from knowledge.documents import pdf
from knowledge.test_api import TIDES, archive_with, upload
from server.conftest import Api, AppFactory


def reader(request: Request) -> Any:
    """Searches once when it has file_search, then answers with what the tool returned (or says it had none)."""
    results = [part for message in request.messages for part in message.parts if isinstance(part, ToolResultPart)]
    if results:
        return f"found: {results[-1].content}"
    if any(tool.name == "file_search" for tool in request.tools):
        return [ToolCallPart("call-1", "file_search", {"query": "lighthouse storm 1887", "max_results": 2})]
    return "no file_search tool"


@pytest.fixture(params=["sqlite", "postgres"])
async def rag_api(request: pytest.FixtureRequest, make_api: AppFactory) -> AsyncIterator[Api]:
    llm = offline_llm(backends={"reader": FunctionBackend(reader, name="reader")})
    async with make_api(database=request.param, llm=llm) as api:
        yield api


async def run_output(api: Api, agent_id: str, tenant: str = "a") -> str:
    started = await api.request("POST", "/v1/runs", tenant=tenant, json={"agent_id": agent_id, "input": "Storms?"})
    assert started.status_code == 202, started.text
    done = await api.wait_run(started.json()["id"], tenant=tenant, timeout=60)
    assert done["status"] == "completed", done
    return str(done["output"])


async def test_agents_search_the_settings_archives_and_cite_them(rag_api: Api) -> None:
    api = rag_api
    report = await upload(api, "report.pdf", pdf(["Revenue grew.", "The lighthouse keeper logged every storm in 1887."]))
    archive = await archive_with(api, [report, await upload(api, "tides.md", TIDES)], name="library")
    agent = await api.create_agent(model="reader/x")
    assert await run_output(api, agent["id"]) == "no file_search tool"  # no rag_archives yet

    settings = await api.request("PATCH", "/v1/settings", json={"rag_archives": ["library"]})
    assert settings.status_code == 200
    answer = await run_output(api, agent["id"])
    assert answer.startswith("found: ") and "[1] report.pdf, page 2" in answer and "lighthouse keeper" in answer
    assert "archive library" in answer

    opted_out = await api.create_agent(model="reader/x", metadata={"file_search": False})
    assert await run_output(api, opted_out["id"]) == "no file_search tool"

    # Another tenant naming the same archive name in its settings reaches nothing of this tenant's.
    await api.request("PATCH", "/v1/settings", tenant="b", json={"rag_archives": ["library", str(archive["id"])]})
    theirs = await api.create_agent(tenant="b", model="reader/x")
    assert await run_output(api, theirs["id"], tenant="b") == "no file_search tool"


async def test_workflows_name_archives_per_agent(rag_api: Api) -> None:
    api = rag_api
    report = await upload(api, "report.pdf", pdf(["The lighthouse keeper logged every storm in 1887."]))
    await archive_with(api, [report], name="logs")
    spec = {"strategy": "sequential", "agents": [
        {"name": "searcher", "model": "reader/x", "archives": ["logs"]},
        {"name": "plain", "model": "reader/x", "archives": []},
    ]}
    created = await api.request("POST", "/v1/workflows", json={"name": "flow", "spec": spec})
    assert created.status_code == 201, created.text
    run = await api.request("POST", "/v1/runs", json={"workflow_id": created.json()["id"], "input": "Storms?"})
    assert run.status_code == 202, run.text
    done = await api.wait_run(run.json()["id"], timeout=60)
    outputs = {agent["name"]: agent["output"] for agent in done["agents"]}
    assert "[1] report.pdf" in outputs["searcher"] and outputs["plain"] == "no file_search tool"

    unknown = {"agents": [{"name": "searcher", "model": "reader/x", "archives": ["nope"]}]}
    refused = await api.request("POST", "/v1/workflows", json={"name": "broken", "spec": unknown})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unknown_archive"
    assert refused.json()["error"]["param"] == "spec.agents[0].archives[0]"
