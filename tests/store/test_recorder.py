"""``StoreRunRecorder``: the orchestrator's records land in the database, on SQLite and PostgreSQL.

A real run of offline agents (``test/echo``, and one that messages another over the run's bus) goes
through the orchestrator with the store as its recorder; the run, its agent steps, the message and
every event but tokens are then read back through the repositories.
"""

from __future__ import annotations

import uuid

from agentadapter.agents import AgentContext, AgentResult, BaseAgent, LLMAgent
from agentadapter.orchestrator import Orchestrator, RunOptions
from agentadapter.store import runs, tenants
from agentadapter.store.database import Database
from agentadapter.store.models import Tenant
from agentadapter.store.recorder import StoreRunRecorder
from agentadapter.testing import offline_llm


class Messenger(BaseAgent):
    """Sends the next agent a note over the run's bus, then answers."""

    async def execute(self, context: AgentContext) -> AgentResult:
        await context.send("writer", {"note": "be brief"})
        return AgentResult(output="noted", text="noted", agent=self.name)


async def test_a_run_is_recorded_with_its_steps_messages_and_events(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        project = await tenants.default_project(session, tenant.id)
        run = await runs.create_run(session, tenant.id, input="Why tides?", project_id=project.id)
    llm = offline_llm()
    orchestrator = Orchestrator(llm=llm, recorder=StoreRunRecorder(db, tenant.id))
    team = [Messenger("messenger"), LLMAgent("writer", model="test/echo", instructions="Write.")]
    result = await orchestrator.run("Why tides?", team, "sequential", str(project.id),
                                    options=RunOptions(run_id=str(run.id)))
    await llm.aclose()
    assert result.status == "completed"
    async with db.session() as session:
        stored = await runs.get_run(session, tenant.id, run.id)
        steps = await runs.list_agent_runs(session, tenant.id, run.id)
        messages = await runs.list_messages(session, tenant.id, run.id)
        events = await runs.list_events(session, tenant.id, run.id)
        later = await runs.list_events(session, tenant.id, run.id, after=events[-2].seq)
    assert (stored.status, stored.output, stored.strategy) == ("completed", result.output, "sequential")
    assert stored.usage["total_tokens"] == result.usage.total_tokens > 0
    assert stored.started_at is not None and stored.finished_at is not None and stored.duration_ms > 0
    assert [(s.name, s.step, s.status) for s in steps] == [("messenger", 1, "completed"), ("writer", 2, "completed")]
    assert steps[1].model == "echo" and steps[1].finished_at is not None
    assert [(m.sender, m.recipient, m.payload) for m in messages] == [("messenger", "writer", {"note": "be brief"})]
    types = [e.type for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished" and "token" not in types
    assert "message" in types
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert stored.last_seq == events[-1].seq
    assert [e.seq for e in later] == [events[-1].seq]


async def test_a_run_started_outside_the_api_is_inserted_in_the_default_project(db: Database, tenant: Tenant) -> None:
    llm = offline_llm()
    orchestrator = Orchestrator(llm=llm, recorder=StoreRunRecorder(db, tenant.id))
    run_id = uuid.uuid4()
    result = await orchestrator.run("Hello", [LLMAgent("solo", model="test/echo")], options=RunOptions(
        run_id=str(run_id)))
    await llm.aclose()
    async with db.session() as session:
        stored = await runs.get_run(session, tenant.id, run_id)
        project = await tenants.default_project(session, tenant.id)
    assert (stored.status, stored.project_id, stored.input) == ("completed", project.id, "Hello")
    assert result.output == stored.output
