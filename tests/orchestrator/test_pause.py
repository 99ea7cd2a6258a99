"""Runs paused for human approval: the run ends ``paused`` with a JSON record, and resumes from it."""

from __future__ import annotations

import json

from agentadapter.agents import LLMAgent, tool
from agentadapter.orchestrator import Orchestrator, RunOptions, RunResume, StepRequest, StepRun

deleted: list[str] = []


@tool(needs_approval=True)
async def delete_everything() -> str:
    """Delete everything."""
    deleted.append("all")
    return "gone"


async def test_a_sequential_run_pauses_then_resumes_where_it_stopped(orchestrator: Orchestrator, models, recorder):
    deleted.clear()
    planner = LLMAgent("planner", model="fake/planner")
    models.on("planner", "plan: delete")
    risky = LLMAgent("risky", model="test/tools", tools=[delete_everything])
    events = []
    paused = await orchestrator.run("clean up", [planner, risky], on_event=events.append)

    assert paused.status == "paused" and deleted == []
    record = paused.details["paused"]
    assert [p["tool"] for p in record["pending"]] == ["delete_everything"]
    assert list(record["outcomes"]) == ["1:run:planner"]
    assert events[-1].type == "run_paused" and events[-1].data["pending"] == record["pending"]
    assert record["last_seq"] == events[-1].seq
    stored = json.loads(json.dumps(paused.details))  # what a database keeps
    call_id = record["pending"][0]["call_id"]

    resumed_events = []
    resume = RunResume.from_details(stored, {call_id: True})
    resumed = await orchestrator.run("clean up", [planner, risky], options=RunOptions(run_id=paused.run_id,
                                     resume=resume), on_event=resumed_events.append)
    assert resumed.status == "completed", resumed.error
    assert deleted == ["all"]
    assert models.calls["planner"] == 1  # the completed step was not run again
    assert [a.name for a in resumed.agents] == ["planner", "risky"]
    assert resumed.agents[1].id == paused.agents[1].id  # the paused step is recorded again under its id
    assert resumed_events[0].type == "run_resumed" and resumed_events[0].seq == record["last_seq"] + 1
    assert resumed_events[-1].type == "run_finished"
    assert resumed.cost_usd >= paused.cost_usd


async def test_a_rejected_call_goes_back_to_the_model_and_the_run_completes(orchestrator: Orchestrator):
    deleted.clear()
    risky = LLMAgent("risky", model="test/tools", tools=[delete_everything])
    paused = await orchestrator.run("clean up", [risky])
    call_id = paused.details["paused"]["pending"][0]["call_id"]
    resumed = await orchestrator.run("clean up", [risky], options=RunOptions(
        run_id=paused.run_id, resume=RunResume.from_result(paused, {call_id: False})))
    assert resumed.status == "completed" and deleted == []


def test_a_resume_needs_a_decision_for_every_pending_call_and_no_other():
    details = {"paused": {"step_key": "1:run:a", "record": {"name": "a", "step": 1}, "state": {},
                          "pending": [{"call_id": "c1", "tool": "t"}]}}
    for approvals, message in [({}, "no decision for pending tool call(s) c1"),
                               ({"c1": True, "c9": True}, "c9 are not pending")]:
        try:
            RunResume.from_details(details, approvals)
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError("a bad set of decisions was accepted")
    try:
        RunResume.from_details({}, {})
    except ValueError as exc:
        assert "not paused" in str(exc)


async def test_a_step_executed_on_its_own_still_fails_when_its_agent_pauses(llm):
    risky = LLMAgent("risky", model="test/tools", tools=[delete_everything])
    outcome = await StepRun(StepRequest("risky", 1, input="go"), run_id="r1", task="clean up",
                            agents={"risky": risky}, strategy="sequential", llm=llm).execute()
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error["type"] == "AgentPausedError"


async def test_a_rejection_reason_reaches_the_model(orchestrator: Orchestrator, models):
    deleted.clear()
    risky = LLMAgent("risky", model="test/tools", tools=[delete_everything])
    paused = await orchestrator.run("clean up", [risky])
    call_id = paused.details["paused"]["pending"][0]["call_id"]
    resume = RunResume.from_result(paused, {call_id: False})
    resume = RunResume(resume.step_key, resume.record, resume.state, resume.approvals, resume.outcomes,
                       resume.last_seq, reasons={call_id: "backups are not done yet"})
    models.on("after", "I will not delete anything.")
    risky_after = LLMAgent("risky", model="fake/after", tools=[delete_everything])
    resumed = await orchestrator.run("clean up", [risky_after],
                                     options=RunOptions(run_id=paused.run_id, resume=resume))
    assert resumed.status == "completed" and deleted == []
    declined = models.seen["after"][0].messages[-1].parts[0]
    assert "a human declined" in declined.content and "backups are not done yet" in declined.content


async def test_a_queued_step_pauses_its_replayed_run_and_resumes_on_its_own(llm):
    from agentadapter.orchestrator import StepOutcome, replay

    deleted.clear()
    risky = LLMAgent("risky", model="test/tools", tools=[delete_everything])
    request = StepRequest("risky", 1, input="clean up")
    outcome = await StepRun(request, run_id="r2", task="clean up", agents={"risky": risky}, strategy="sequential",
                            llm=llm, can_pause=True).execute()
    assert outcome.status == "paused" and outcome.paused is not None and deleted == []
    stored = StepOutcome.from_dict(json.loads(json.dumps(outcome.to_dict())))  # what the step's row keeps

    replayed = await replay(run_id="r2", task="clean up", agents=["risky"], strategy="sequential",
                            recorded={request.key: stored})
    assert replayed.result.status == "paused" and not replayed.finished and replayed.waiting == []
    details = replayed.result.details
    call_id = details["paused"]["pending"][0]["call_id"]

    resume = RunResume.from_details(json.loads(json.dumps(details)), {call_id: True})
    done = await StepRun(request, run_id="r2", task="clean up", agents={"risky": risky}, strategy="sequential",
                         llm=llm, can_pause=True, options=RunOptions(resume=resume)).execute()
    assert done.status == "completed" and deleted == ["all"]
    finished = await replay(run_id="r2", task="clean up", agents=["risky"], strategy="sequential",
                            recorded={request.key: done})
    assert finished.result.status == "completed"
