"""Draining, in process: the SIGTERM hook, /readyz while draining, an SSE stream told to stop, and the
hand-over of a run still going at shutdown. The same with real processes and a rolling restart is in
``test_rolling_restart.py``."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from types import FrameType

import sqlalchemy as sa

from agentadapter.llm.messages import Request
from agentadapter.orchestrator import RunEvent
from agentadapter.server.drain import Drain
from agentadapter.server.sse import sse_stream
from agentadapter.store.database import Database, database_url
from agentadapter.store.models import Run, RunEventRow
from agentadapter.testing import FunctionBackend, offline_llm
from server.conftest import Api, AppFactory


async def test_sigterm_starts_the_drain_then_reaches_the_servers_handler_after_the_delay() -> None:
    reached = asyncio.Event()
    seen: list[float] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:  # what uvicorn's handle_exit stands for
        seen.append(time.monotonic())
        reached.set()

    original = signal.signal(signal.SIGTERM, server_handler)
    try:
        drain = Drain(grace_s=5, delay_s=0.2)
        assert drain.install()
        signal.raise_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            await drain.started.wait()
            assert not reached.is_set()  # the listener stays open for the pre-stop delay
            await reached.wait()
        assert drain.signalled and 0 < drain.remaining() <= 5
        drain.uninstall()
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, original)


def test_without_a_servers_handler_nothing_is_installed() -> None:
    original = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        drain = Drain(grace_s=5, delay_s=0)
        assert not drain.install()  # nobody would shut down gracefully: SIGTERM keeps its default
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert drain.remaining() == 0  # a shutdown without SIGTERM hands runs over at once
    finally:
        signal.signal(signal.SIGTERM, original)


async def test_readyz_answers_503_draining_once_the_drain_started(make_api: AppFactory) -> None:
    async with make_api() as api:
        assert (await api.client.get("/readyz")).status_code == 200
        assert api.state.drain is not None
        api.state.drain.begin()
        answer = await api.client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["status"] == "draining"
        assert (await api.client.get("/healthz")).status_code == 200  # alive, just not taking traffic


async def test_an_sse_stream_ends_between_frames_when_told_to_stop() -> None:
    more = asyncio.Event()

    async def events() -> AsyncIterator[RunEvent]:
        yield RunEvent(1, "run_started", "r", None, 0.0, {"task": "x"})
        await more.wait()  # a run that goes on
        yield RunEvent(2, "run_finished", "r", None, 0.0, {})

    stop = asyncio.Event()
    chunks: list[bytes] = []
    async with asyncio.timeout(5):
        async for chunk in sse_stream(events(), heartbeat_s=60, stop=stop):
            chunks.append(chunk)
            if b"run_started" in chunk:
                stop.set()
    text = b"".join(chunks).decode()
    assert text.endswith("\n\n") and "id: 1\nevent: run_started\n" in text
    assert "run_finished" not in text and "event: error" not in text


async def test_a_run_still_going_at_shutdown_is_handed_over(make_api: AppFactory) -> None:
    gate = asyncio.Event()

    async def waits(request: Request) -> str:
        await gate.wait()
        return "never"

    llm = offline_llm(backends={"gate": FunctionBackend(waits, name="gate")})
    async with make_api(llm=llm) as api:
        agent = await api.create_agent(model="gate/x")
        run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "x"})).json()
        await _until_running(api, run["id"])
        settings = api.state.settings
    # The app closed without SIGTERM: no grace, the run is handed over at once.
    db = Database(database_url(settings))
    try:
        async with db.session() as session:
            stored = await session.get(Run, uuid.UUID(run["id"]))
            assert stored is not None and stored.status == "failed", stored
            assert stored.error is not None and stored.error["type"] == "ServerShutdown"
            last = (await session.execute(sa.select(RunEventRow).where(RunEventRow.run_id == stored.id)
                                          .order_by(RunEventRow.seq.desc()).limit(1))).scalar_one()
            assert last.type == "run_finished"
    finally:
        await db.dispose()
        gate.set()


async def _until_running(api: Api, run_id: str) -> None:
    async with asyncio.timeout(10):
        while (await api.request("GET", f"/v1/runs/{run_id}")).json()["status"] != "running":
            await asyncio.sleep(0.02)
