"""Runs a Celery worker executes are stored through the tenant's policy too: the worker's drive and step
(run in process, as in tests/worker/test_replay.py) write no personal data once the run has ended - not
in the run, its agent steps, its events, nor the step records the worker executed from."""

from __future__ import annotations

import json

import sqlalchemy as sa

from agentadapter.store import compliance as compliance_store
from agentadapter.store import runs as run_store
from agentadapter.store import tenants
from agentadapter.store import workflows as workflow_store
from agentadapter.store.models import AgentRun, RunEventRow
from agentadapter.worker import app as worker_app
from store.databases import unique
from worker.conftest import private_redis  # noqa: F401 - fixture
from worker.test_replay import TRIO, Runtime, runtime, stored  # noqa: F401 - fixture

EMAIL = "jane.doe@example.com"


async def test_a_worker_run_is_stored_masked(runtime: Runtime) -> None:  # noqa: F811 - the fixture
    async with runtime.db.writer() as session:
        tenant = await tenants.create_tenant(session, unique("masked-worker"))
        policy = await compliance_store.ensure_policy(session, tenant.id)
        policy.pii_mode = "mask"
        project = await tenants.default_project(session, tenant.id)
        row = await workflow_store.create_workflow(session, tenant.id, name="trio", spec=TRIO)
        run = await run_store.create_run(
            session,
            tenant.id,
            input=f"Write to {EMAIL}",
            project_id=project.id,
            workflow_id=row.id,
            workflow_name=row.name,
        )
    compliance_store.forget_policy(tenant.id)
    runtime.sent.append((worker_app.DRIVE_TASK, [str(run.id)]))
    await runtime.deliver_all()

    ended, steps = await stored(runtime, run.id)
    assert ended.status == "completed", ended.error
    async with runtime.db.session() as session:
        agent_runs = (
            await session.execute(
                sa.select(AgentRun.input, AgentRun.output, AgentRun.text).where(AgentRun.run_id == run.id)
            )
        ).all()
        events = (await session.execute(sa.select(RunEventRow.data).where(RunEventRow.run_id == run.id))).all()
    assert len(steps) == 3 and len(agent_runs) == 3 and events
    everything = json.dumps(
        [
            ended.input,
            ended.output,
            ended.text,
            [[s.request, s.result] for s in steps],
            [list(a) for a in agent_runs],
            [e[0] for e in events],
        ],
        default=str,
    )
    assert EMAIL not in everything
    assert "Write to [EMAIL]" in everything
