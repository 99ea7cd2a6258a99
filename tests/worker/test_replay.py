"""The worker's drive and step on the orchestrator's public seam, in process: a real database, a private Redis.

``drive_run`` and ``execute_step`` run here as the Celery tasks run them, with the tasks they send
collected instead of going to a broker (so the test delivers them, in order). A run's drives
replay it without building any agent; each executed step builds the run's agents once. A stored
agent that no longer builds fails its run with the build's own error, as it did when the drive
built it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentadapter.agents.tools.registry import ToolRegistry, default_registry
from agentadapter.llm.client import LLM
from agentadapter.orchestrator.workflow import Workflow
from agentadapter.service.building import DefinitionBuilder
from agentadapter.service.channel import RunChannel
from agentadapter.service.config import ServiceSettings
from agentadapter.service.worker_settings import WorkerSettings
from agentadapter.store import agents as agent_store
from agentadapter.store import runs as run_store
from agentadapter.store import tenants
from agentadapter.store import workflows as workflow_store
from agentadapter.store.database import Database
from agentadapter.store.models import AgentDefinition, Run, RunStep
from agentadapter.testing import offline_llm
from agentadapter.worker import app as worker_app
from agentadapter.worker.engine import drive_run, execute_step
from services import PrivateRedis
from store.databases import new_database_url


@pytest.fixture(scope="module")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("templates")


class TenantLLMs:
    """Every tenant's calls go through the one offline facade."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    async def get(self, tenant_id: uuid.UUID) -> LLM:
        return self.llm


@dataclass
class Runtime:
    """What ``drive_run`` and ``execute_step`` use of a worker process's runtime."""

    db: Database
    llm: LLM
    channel: RunChannel
    tenant_llms: TenantLLMs
    tools: ToolRegistry = field(default_factory=default_registry)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    sent: list[tuple[str, list[str]]] = field(default_factory=list)

    async def deliver_all(self) -> dict[str, int]:
        """Run the tasks sent so far, and those they send, until none is left; how many of each ran."""
        ran = {worker_app.DRIVE_TASK: 0, worker_app.STEP_TASK: 0}
        while self.sent:
            name, args = self.sent.pop(0)
            ran[name] += 1
            if name == worker_app.DRIVE_TASK:
                await drive_run(self, uuid.UUID(args[0]))  # type: ignore[arg-type]
            else:
                await execute_step(self, uuid.UUID(args[0]), args[1])  # type: ignore[arg-type]
        return ran


@dataclass
class Builds:
    """How many times agents were built, and through which call."""

    counts: dict[str, int] = field(default_factory=lambda: {"build_workflow": 0, "build_agent": 0, "agents": 0})


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Builds]:
    counter = Builds()

    def counting(owner: Any, name: str, key: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counter.counts[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    counting(DefinitionBuilder, "build_workflow", "build_workflow")
    counting(DefinitionBuilder, "build_agent", "build_agent")
    counting(Workflow, "build_agents", "agents")  # every agent set a workflow builds, whoever asks
    yield counter


@pytest.fixture
async def runtime(tmp_path: Path, template_dir: Path, private_redis: PrivateRedis,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    db = Database(new_database_url("sqlite", tmp_path, template_dir))
    llm = offline_llm()
    channel = RunChannel(private_redis.url(), WorkerSettings())
    rt = Runtime(db, llm, channel, TenantLLMs(llm))

    def send_task(name: str, args: list[str], task_id: str | None = None, **_: Any) -> None:
        rt.sent.append((name, list(args)))

    monkeypatch.setattr(worker_app.celery_app, "send_task", send_task)
    try:
        yield rt
    finally:
        await channel.aclose()
        await llm.aclose()
        await db.dispose()


async def new_run(rt: Runtime, **target: Any) -> uuid.UUID:
    async with rt.db.writer() as session:
        tenant = await tenants.create_tenant(session, f"t-{uuid.uuid4().hex[:8]}")
        project = await tenants.default_project(session, tenant.id)
        if "workflow" in target:
            spec = target.pop("workflow")
            row = await workflow_store.create_workflow(session, tenant.id, name=spec["name"], spec=spec)
            target = {"workflow_id": row.id, "workflow_name": row.name}
        elif "agent" in target:
            definition = await agent_store.create_agent(session, tenant.id, **target.pop("agent"))
            target = {"agent_id": definition.id}
        run = await run_store.create_run(session, tenant.id, input="Why do tides turn?", project_id=project.id,
                                         **target)
    rt.sent.append((worker_app.DRIVE_TASK, [str(run.id)]))  # as the API's executor sends it
    return run.id


async def stored(rt: Runtime, run_id: uuid.UUID) -> tuple[Run, list[RunStep]]:
    async with rt.db.session() as session:
        run = await session.get(Run, run_id)
        steps = (await session.scalars(sa.select(RunStep).where(RunStep.run_id == run_id))).all()
    assert run is not None
    return run, list(steps)


TRIO = {"name": "trio", "strategy": "sequential", "agents": [
    {"name": n, "model": "test/echo", "instructions": f"You are the {n}."} for n in ("researcher", "writer", "editor")]}


async def test_a_three_step_run_builds_its_agents_once_per_step_and_never_to_drive(runtime: Runtime,
                                                                                   builds: Builds) -> None:
    run_id = await new_run(runtime, workflow=TRIO)
    ran = await runtime.deliver_all()
    run, steps = await stored(runtime, run_id)
    assert run.status == "completed", run.error
    assert run.text == "Why do tides turn?"  # echoed along the chain
    assert sorted(s.key for s in steps) == ["1:run:researcher", "2:run:writer", "3:run:editor"]
    assert {s.status for s in steps} == {"done"}
    # One drive to start, one after each step; three steps.
    assert ran == {worker_app.DRIVE_TASK: 4, worker_app.STEP_TASK: 3}
    assert builds.counts == {"build_workflow": 3, "build_agent": 0, "agents": 3}


async def test_a_parallel_run_waits_on_its_blocked_steps_and_ends_once(runtime: Runtime, builds: Builds) -> None:
    spec = {"name": "pair", "strategy": "parallel", "aggregate": "concat", "max_concurrency": 1, "agents": [
        {"name": n, "model": "test/echo", "instructions": "Answer."} for n in ("a", "b")]}
    run_id = await new_run(runtime, workflow=spec)
    runtime.sent.clear()
    await drive_run(runtime, run_id)  # type: ignore[arg-type]
    # One slot: the first drive asks for one step only (the other waits for the slot), and started the run.
    assert [(name, args[1]) for name, args in runtime.sent] == [(worker_app.STEP_TASK, "1:run:a")]
    await drive_run(runtime, run_id)  # type: ignore[arg-type]  # a repeated drive sends nothing again
    assert len(runtime.sent) == 1
    await runtime.deliver_all()
    run, steps = await stored(runtime, run_id)
    assert run.status == "completed" and run.text == "## a\n\nWhy do tides turn?\n\n## b\n\nWhy do tides turn?"
    assert len(steps) == 2 and builds.counts["agents"] == 2


async def test_a_stored_agent_that_no_longer_builds_fails_its_run_with_the_build_error(runtime: Runtime,
                                                                                        builds: Builds) -> None:
    run_id = await new_run(runtime, agent={"name": "solo", "model": "test/echo", "instructions": "Answer."})
    async with runtime.db.writer() as session:  # changed behind the API's back: a model nobody serves
        await session.execute(sa.update(AgentDefinition).where(AgentDefinition.name == "solo").values(model="nowhere/nothing"))
    await runtime.deliver_all()
    run, steps = await stored(runtime, run_id)
    assert run.status == "failed"
    assert run.error is not None and run.error["type"] != "StepFailedError", run.error
    assert "solo" in run.error["message"]
    assert builds.counts["build_agent"] == 1 and [s.status for s in steps] == ["done"]
