"""Parallel runs end to end: each aggregate, graceful degradation, quorum, and cancelling decided agents."""

from __future__ import annotations

import asyncio

from agentadapter.llm.errors import AuthenticationError
from agentadapter.orchestrator import Parallel

from .conftest import Gate, Models, Spender, agent, agents, fails, until


async def test_concat_joins_every_answer_in_group_order(orchestrator, models: Models):
    models.on("a", "alpha").on("b", "beta").on("c", "gamma")
    result = await orchestrator.run("task", agents("a", "b", "c"), "parallel")
    assert result.status == "completed"
    assert result.output == "## a\n\nalpha\n\n## b\n\nbeta\n\n## c\n\ngamma"
    assert result.details["answered"] == ["a", "b", "c"]
    assert result.strategy == "parallel/concat"


async def test_a_failing_agent_is_dropped_and_recorded_while_the_quorum_holds(orchestrator, models: Models):
    models.on("a", "alpha").on("b", fails(AuthenticationError("bad key", provider="fake"))).on("c", "gamma")
    events = []
    result = await orchestrator.run("task", agents("a", "b", "c"), Parallel(quorum=2), on_event=events.append)
    assert result.status == "completed"
    assert result.output == "## a\n\nalpha\n\n## c\n\ngamma"
    assert result.details["dropped"] == ["b"]
    failed = result.agent("b")
    assert failed is not None and failed.status == "failed" and failed.error["type"] == "AuthenticationError"
    assert failed.attempts == 1  # not retryable: not retried
    assert any(e.type == "agent_failed" and e.agent == "b" for e in events)


async def test_when_the_quorum_is_lost_the_run_fails_and_the_rest_is_cancelled(orchestrator, models: Models):
    gate = Gate()
    models.on("a", fails(RuntimeError("a broke"))).on("b", fails(RuntimeError("b broke"))).on("c", gate)
    result = await orchestrator.run("task", agents("a", "b", "c"), Parallel(quorum=2))
    assert result.status == "failed" and result.error["type"] == "QuorumLostError"
    assert "quorum of 2" in result.error["message"]
    assert result.agent("c").status == "cancelled"
    assert "quorum" in result.agent("c").error["message"]
    assert models.cancelled == ["c"] and models.calls["c"] == 1


async def test_first_takes_the_first_success_and_cancels_the_others(orchestrator, models: Models):
    slow_b, slow_c = Gate("late b"), Gate("late c")
    models.on("a", "quick").on("b", slow_b).on("c", slow_c)
    result = await orchestrator.run("task", agents("b", "a", "c"), "first")
    assert result.status == "completed" and result.output == "quick"
    assert result.details["winner"] == "a"
    for name in ("b", "c"):
        record = result.agent(name)
        assert record.status == "cancelled" and "decided: a answered first" in record.error["message"]
    assert sorted(models.cancelled) == ["b", "c"]
    # Nothing is spent after the decision: the cancelled agents made no further model call.
    slow_b.open()
    slow_c.open()
    await asyncio.sleep(0)
    assert models.calls == {"a": 1, "b": 1, "c": 1}


async def test_first_skips_failures(orchestrator, models: Models):
    gate = Gate("second")
    models.on("a", fails(RuntimeError("no"))).on("b", gate)

    async def open_later() -> None:
        await until(lambda: models.calls["a"] == 1 and gate.entered.is_set())
        gate.open()

    opener = asyncio.create_task(open_later())
    result = await orchestrator.run("task", agents("a", "b"), "first")
    await opener
    assert result.output == "second" and result.details["dropped"] == ["a"]


async def test_vote_shows_the_answers_collects_votes_and_the_winner_presents(orchestrator, models: Models):
    models.on("a", "answer A", "b", "FINAL from A")
    models.on("b", "answer B", "Vote: c, it is shorter", "b\nbetter")
    models.on("c", "answer C", "I pick b because it is right", "never")
    result = await orchestrator.run("task", agents("a", "b", "c"), "vote")
    assert result.status == "completed"
    assert result.details["votes"] == {"a": "b", "b": "c", "c": "b"}
    assert result.details["tally"] == {"a": 0, "b": 2, "c": 1}
    assert result.details["winner"] == "b"
    # b presents: it sees its own answer and the others'
    presented = models.seen["b"][-1]
    assert "answer A" in presented.messages[-1].text and "answer C" in presented.messages[-1].text
    assert result.output == "b\nbetter"
    ballot = models.seen["c"][1].messages[-1].text
    assert "answer A" in ballot and "answer B" in ballot and "(yours)" in ballot
    phases = [(r.name, r.phase) for r in result.agents]
    assert phases[-1] == ("b", "present") and sum(1 for _, p in phases if p == "vote") == 3


async def test_vote_stops_collecting_once_a_majority_decides(orchestrator, models: Models):
    late_ballot = Gate("c")
    models.on("a", "answer A", "a", "A presents")
    models.on("b", "answer B", "a")
    models.on("c", "answer C", late_ballot)
    result = await orchestrator.run("task", agents("a", "b", "c"), "vote")
    assert result.output == "A presents" and result.details["winner"] == "a"
    ballot = next(r for r in result.agents if r.name == "c" and r.phase == "vote")
    assert ballot.status == "cancelled" and "2 of 3 votes" in ballot.error["message"]
    assert models.cancelled == ["c"]


async def test_judge_picks_one_answer_or_merges_them(orchestrator, models: Models):
    models.on("a", "answer A").on("b", "answer B").on("judge", "b")
    team = [*agents("a", "b"), agent("judge")]
    result = await orchestrator.run("task", team, Parallel("judge", judge="judge"))
    assert result.output == "answer B" and result.details["picked"] == "b"
    prompt = models.seen["judge"][0].messages[-1].text
    assert "answer A" in prompt and "answer B" in prompt
    models.on("judge", "A and B, merged")
    result = await orchestrator.run("task", team, Parallel("judge", judge="judge"))
    assert result.output == "A and B, merged" and result.details["merged"] is True
    assert [r.phase for r in result.agents] == ["run", "run", "judge"]


async def test_max_concurrency_and_a_fan_out_of_many(orchestrator):
    team = [Spender(f"s{i}", 0.0) for i in range(200)]
    result = await orchestrator.run("task", team, Parallel(max_concurrency=16))
    assert result.status == "completed" and len(result.agents) == 200
    assert all(r.status == "completed" for r in result.agents)


async def test_a_cost_cap_crossed_mid_group_cancels_the_rest(orchestrator):
    from agentadapter.orchestrator import RunLimits, RunOptions

    gate = asyncio.Event()
    team = [Spender("rich", 2.0), Spender("slow", 0.1, gate)]
    result = await orchestrator.run("task", team, "parallel", options=RunOptions(limits=RunLimits(max_cost_usd=1.0)))
    assert result.status == "failed" and result.error["limit"] == "max_cost_usd"
    assert result.agent("slow").status == "cancelled" and team[1].cancelled == 1
    assert result.cost_usd == 2.0
