"""Zero-downtime restarts: real ``agentadapter serve`` processes drain on SIGTERM.

- A rolling restart of two instances behind a load balancer (:mod:`server.balancer`, what nginx's
  upstream does), under a loop of GETs, run submissions and SSE followers: instance A gets SIGTERM,
  exits, starts again and is ready, then B. No request fails, every run submitted succeeds, and every
  SSE follower reads whole frames up to its run's ``run_finished`` (reconnecting with
  ``Last-Event-ID`` when its instance drains).
- One instance with a run that cannot finish within the grace period: on SIGTERM ``/readyz``
  answers 503 ``draining`` at once, an SSE follower's stream ends cleanly between frames, and the run
  is handed over: it ends ``failed`` (``ServerShutdown``) with a ``run_finished`` event.

Both share one SQLite file and a private Redis, as docs/operations.md documents for several processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentadapter.store.models import TERMINAL_RUN_STATUSES
from fakes.stalling_server import StallingServer
from server.balancer import Balancer
from services import free_port, start_redis, stop_group
from store.databases import admin_key, migrated_sqlite

pytestmark = pytest.mark.slow  # processes and brokers of its own: scheduled first (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "agentadapter.cli"]
FINAL = TERMINAL_RUN_STATUSES


class Instance:
    """One ``agentadapter serve`` on a fixed port, started again on the same port after it stops."""

    def __init__(self, name: str, directory: Path, env: dict[str, str]) -> None:
        self.name = name
        self.directory = directory
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_file = directory / f"{name}.ready"
        self.log = directory / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port), "--log-level", "info", "--no-access-log",
                 "--ready-file", str(self.ready_file)],
                env=self.env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        async with asyncio.timeout(90):
            while not self.ready_file.exists():  # written by serve once /readyz answers 200
                assert self.process.poll() is None, self.logs()
                await asyncio.sleep(0.05)

    def terminate(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGTERM)

    async def exited(self) -> int:
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, 90)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process)


@pytest.fixture
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url()
    finally:
        stop_group(server.process)


@pytest.fixture
async def stalling() -> AsyncIterator[StallingServer]:
    server = StallingServer(interval=0.05, chunks=6)  # a run's model call streams for about 0.3 s
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def instances(tmp_path: Path, template_dir: Path, redis_url: str,
              stalling: StallingServer) -> Iterator[Any]:
    made: list[Instance] = []
    config = tmp_path / "agentadapter.yaml"
    config.write_text("backends:\n"
                      f"  trickle: {{type: openai, base_url: \"{stalling.url_for('trickle')}\", api_key: sk-test}}\n"
                      f"  silent: {{type: openai, base_url: \"{stalling.url_for('silent')}\", api_key: sk-test}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTADAPTER_")}
    env.update(AGENTADAPTER_DATA_DIR=str(tmp_path / "data"),
               AGENTADAPTER_DATABASE_URL=migrated_sqlite(tmp_path, template_dir),
               AGENTADAPTER_REDIS_URL=redis_url, AGENTADAPTER_CONFIG=str(config), PYTHONUNBUFFERED="1",
               AGENTADAPTER_SSE_POLL_S="0.1", AGENTADAPTER_GC_FREEZE="false")

    def make(name: str, **extra: str) -> Instance:
        made.append(Instance(name, tmp_path, {**env, **extra}))
        return made[-1]

    yield make
    for instance in made:
        instance.stop()


def _frames(text: str) -> list[dict[str, Any]]:
    """The SSE frames of ``text``; fails on a cut frame (text after the last blank line)."""
    blocks = text.split("\n\n")
    assert blocks[-1] == "", f"a frame was cut: {blocks[-1]!r}"
    frames = []
    for block in blocks[:-1]:
        fields = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if "data" in fields:
            frames.append({"id": fields.get("id"), "event": fields.get("event"), "data": json.loads(fields["data"])})
    return frames


async def _follow(client: httpx.AsyncClient, run_id: str) -> tuple[list[dict[str, Any]], int]:
    """Every event of the run up to ``run_finished``, reconnecting with Last-Event-ID; and the reconnects."""
    events: list[dict[str, Any]] = []
    connections = 0
    while not events or events[-1]["event"] != "run_finished":
        connections += 1
        headers = {"Last-Event-ID": events[-1]["id"]} if events else {}
        answer = await client.get(f"/v1/runs/{run_id}/events", headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        events.extend(_frames(answer.text))
    return events, connections - 1


async def test_a_rolling_restart_under_load_loses_no_request_and_no_run(instances: Any) -> None:
    # The delay must outlast the balancer noticing /readyz's 503 (a 50 ms check, slower on a loaded machine):
    # a connection the balancer opens after the listener closed is reset, and a POST is not sent again.
    drain = {"AGENTADAPTER_SHUTDOWN_GRACE_S": "30", "AGENTADAPTER_SHUTDOWN_DELAY_S": "2"}
    a, b = instances("a", **drain), instances("b", **drain)
    await asyncio.gather(a.start(), b.start())
    balancer = Balancer([a.url, b.url])
    await balancer.start()
    try:
        async with asyncio.timeout(30):
            await balancer.wait_up(a.url)
            await balancer.wait_up(b.url)
        key = await admin_key(a.env["AGENTADAPTER_DATABASE_URL"], "rolling")
        async with httpx.AsyncClient(base_url=balancer.url, headers={"Authorization": f"Bearer {key}"},
                                     timeout=60) as client:
            agent = (await client.post("/v1/agents", json={"name": "trickles", "model": "trickle/m"})).json()
            failures: list[str] = []
            run_ids: list[str] = []
            followed: list[tuple[list[dict[str, Any]], int]] = []
            submitted = asyncio.Condition()
            stop = asyncio.Event()

            async def until_more_runs(count: int) -> None:
                target = len(run_ids) + count
                async with submitted:
                    await submitted.wait_for(lambda: len(run_ids) >= target or bool(failures))

            async def requests(worker: int) -> None:
                while not stop.is_set():
                    try:
                        got = await client.get(f"/v1/agents/{agent['id']}")
                        if got.status_code != 200:
                            failures.append(f"GET agent: {got.status_code} {got.text[:200]}")
                        created = await client.post("/v1/runs", json={"agent_id": agent["id"], "input": "hi"})
                        if created.status_code != 202:
                            failures.append(f"POST run: {created.status_code} {created.text[:200]}")
                            continue
                        run_id = created.json()["id"]
                        async with submitted:
                            run_ids.append(run_id)
                            submitted.notify_all()
                        if worker == 0:  # one follower at a time, through the restarts
                            followed.append(await _follow(client, run_id))
                        else:
                            read = await client.get(f"/v1/runs/{run_id}")
                            if read.status_code != 200:
                                failures.append(f"GET run: {read.status_code} {read.text[:200]}")
                    except (httpx.HTTPError, AssertionError) as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                        async with submitted:
                            submitted.notify_all()

            workers = [asyncio.create_task(requests(n)) for n in range(4)]
            async with asyncio.timeout(60):
                await until_more_runs(10)
            for instance in (a, b):
                active = (await httpx.AsyncClient().get(instance.url + "/readyz")).json()["active_runs"]
                instance.terminate()
                async with asyncio.timeout(10):
                    await balancer.wait_down(instance.url)  # /readyz said 503 before the listener closed
                assert await instance.exited() == 128 + signal.SIGTERM, instance.logs()
                await instance.start()
                async with asyncio.timeout(30):
                    await balancer.wait_up(instance.url)
                    await until_more_runs(10)
                assert active >= 0
            stop.set()
            await asyncio.gather(*workers)

            assert failures == [], failures[:10]

            async def final(run_id: str) -> dict[str, Any]:
                while True:
                    run: dict[str, Any] = (await client.get(f"/v1/runs/{run_id}")).json()
                    if run["status"] in FINAL:
                        return run
                    await asyncio.sleep(0.05)

            async with asyncio.timeout(60):
                ended = await asyncio.gather(*(final(r) for r in run_ids))
    finally:
        await balancer.close()
    statuses = {run["status"] for run in ended}
    assert statuses == {"completed"}, [(r["id"], r["status"], r.get("error")) for r in ended if
                                       r["status"] != "completed"]
    assert len(run_ids) >= 30
    for events, _reconnects in followed:
        assert events[-1]["data"]["data"]["status"] == "completed"
        seqs = [int(e["id"]) for e in events]
        assert seqs == sorted(set(seqs)), "an event was repeated or came out of order across a reconnect"
    for instance in (a, b):
        log = instance.logs()
        assert "Traceback" not in log, log[-3000:]
        assert "timeout graceful shutdown exceeded" not in log, log[-3000:]


async def test_a_run_that_outlasts_the_grace_is_handed_over_and_its_stream_ends_cleanly(
    instances: Any, stalling: StallingServer,
) -> None:
    server = instances("only", AGENTADAPTER_SHUTDOWN_GRACE_S="1", AGENTADAPTER_SHUTDOWN_DELAY_S="3")
    await server.start()
    key = await admin_key(server.env["AGENTADAPTER_DATABASE_URL"], "rolling")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        agent = (await client.post("/v1/agents", json={"name": "waits", "model": "silent/m"})).json()
        run_id = (await client.post("/v1/runs", json={"agent_id": agent["id"], "input": "hi"})).json()["id"]
        async with asyncio.timeout(20):
            await stalling.wait_for("silent")  # the run waits on a provider that never answers
        async with client.stream("GET", f"/v1/runs/{run_id}/events") as stream:
            chunks = stream.aiter_text()
            first = await anext(chunks)  # the stream is open and has sent its first frames
            server.terminate()
            async with asyncio.timeout(10):
                while (ready := await client.get("/readyz")).status_code == 200:
                    await asyncio.sleep(0.02)
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            rest = "".join([chunk async for chunk in chunks])  # ends without waiting for the run
        streamed = _frames(first + rest)
        assert streamed[0]["event"] == "run_started"
        assert "run_finished" not in [f["event"] for f in streamed]
    assert await server.exited() == 128 + signal.SIGTERM, server.logs()
    assert "Traceback" not in server.logs()

    await server.start()
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        run = (await client.get(f"/v1/runs/{run_id}")).json()
        events = _frames((await client.get(f"/v1/runs/{run_id}/events",
                                           headers={"Last-Event-ID": streamed[-1]["id"]})).text)
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "ServerShutdown", run["error"]
    assert "start it again" in run["error"]["message"]
    assert [a["status"] for a in run["agents"]] == ["cancelled"]  # stopped here; the run's end says why
    assert events[-1]["event"] == "run_finished"
    assert events[-1]["data"]["data"]["error"]["type"] == "ServerShutdown"
