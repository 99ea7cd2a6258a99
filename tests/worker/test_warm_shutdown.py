"""Workers drain too: ``agentadapter worker`` on SIGTERM is Celery's warm shutdown. The steps it was
executing are finished by it (claimed once, recorded by it), it exits 0, and every run completes.

Uses the cluster of ``test_celery_runs.py`` (two real workers, PostgreSQL, a private Redis as broker).
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from worker.test_celery_runs import Cluster, api, assert_recorded_once, cluster, main_process, step_rows

__all__ = ["cluster"]  # the module's fixture, used here


async def test_a_worker_stopped_with_sigterm_finishes_its_steps_first(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with api(cluster, monkeypatch) as client:
        agents = [{"name": n, "model": "slow/m", "instructions": "answer"} for n in ("x", "y")]
        workflow = await client.workflow("warm", {"strategy": "sequential"}, agents)
        runs = [(await client.post(f"/v1/workflows/{workflow}/run", {"input": f"job {i}"}))["id"]
                for i in range(12)]
        victim = cluster.workers[0]
        async with asyncio.timeout(30):  # the victim is in the middle of steps
            while not (in_hand := [(r.run_id, r.key) for r in await step_rows(client.db, runs)
                                   if r.status == "running" and main_process(r) == victim.pid]):
                await asyncio.sleep(0.05)
        os.kill(victim.pid, signal.SIGTERM)  # the main process: Celery's warm shutdown
        assert await asyncio.to_thread(victim.wait, 60) == 0
        cluster.workers.remove(victim)
        statuses = await client.wait_all(runs, timeout=60)
        assert set(statuses.values()) == {"completed"}
        rows = {(r.run_id, r.key): r for r in await assert_recorded_once(client.db, runs, 2)}
        for step in in_hand:  # finished by the worker that had it, never handed to another
            assert rows[step].claims == 1 and main_process(rows[step]) == victim.pid, rows[step]
        cluster.start_worker(3)
