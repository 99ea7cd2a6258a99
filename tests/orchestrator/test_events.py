"""Run events: numbering, the stream a handle gives, replay for late subscribers, listeners."""

from __future__ import annotations

import logging

from agentadapter.orchestrator import EVENT_TYPES, EventLog, Orchestrator, RunOptions

from .conftest import Gate, Models, agents, fails


async def test_a_run_streams_typed_numbered_events(orchestrator: Orchestrator, models: Models):
    models.on("b", fails(RuntimeError("no")))
    handle = orchestrator.start("go", agents("a", "b"), "parallel")
    events = [event async for event in handle]
    result = await handle
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "run_started" and events[-1].type == "run_finished"
    assert events[0].data["agents"] == ["a", "b"] and events[0].agent is None
    assert {e.type for e in events} >= {"agent_started", "token", "agent_finished", "agent_failed"}
    assert all(e.type in EVENT_TYPES and e.run_id == result.run_id for e in events)
    finished = events[-1].data
    assert finished["status"] == "completed" and finished["output"] == "go"
    assert events[-1].to_dict()["seq"] == len(events)


async def test_late_subscribers_get_the_events_replayed_without_tokens(orchestrator: Orchestrator, models: Models):
    gate = Gate("later")
    models.on("b", gate)
    handle = orchestrator.start("go", agents("a", "b"))
    live = []

    async def follow() -> None:
        async for event in handle.events():
            live.append(event)
            if event.type == "agent_started" and event.agent == "b":
                gate.open()

    await follow()
    await handle
    replayed = [e async for e in handle.events()]
    assert [e.seq for e in replayed] == [e.seq for e in live if e.type != "token"]
    after = [e async for e in handle.events(after=replayed[2].seq)]
    assert after == replayed[3:]


async def test_listeners_see_every_event_and_a_broken_one_does_not_break_the_run(llm, caplog):
    seen = []

    def broken(event):
        raise RuntimeError("display broke")

    handle = Orchestrator(llm=llm).start("go", agents("a"), on_event=seen.append)
    handle.add_listener(broken)
    with caplog.at_level(logging.ERROR, logger="agentadapter.orchestrator"):
        result = await handle
    assert result.status == "completed" and seen[-1].type == "run_finished"
    assert "display broke" in caplog.text


async def test_events_can_be_kept_or_not(llm):
    handle = Orchestrator(llm=llm).start("go", agents("a"), options=RunOptions(keep_events=False))
    await handle
    assert [e async for e in handle.events()] == []


async def test_a_failing_recorder_does_not_stop_the_run(llm, caplog):
    from agentadapter.orchestrator import InMemoryRunRecorder

    class Broken(InMemoryRunRecorder):
        async def save_agent_run(self, run_id, agent_run):
            raise OSError("database is down")

    with caplog.at_level(logging.ERROR, logger="agentadapter.orchestrator"):
        result = await Orchestrator(llm=llm, recorder=Broken()).run("go", agents("a", "b"))
    assert result.status == "completed"
    assert caplog.text.count("the run recorder failed") == 1


def test_the_log_numbers_and_closes():
    log = EventLog("r1")
    first = log.emit("run_started", None, {})
    log.emit("token", "a", {"text": "x"})
    assert first.seq == 1 and log.last_seq == 2 and [e.seq for e in log.events] == [1]
    log.close()
    log.close()
    assert log.closed
