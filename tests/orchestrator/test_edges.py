"""Edges: guardrails and approvals inside a run, settings validation, strategy names."""

from __future__ import annotations

import pytest

from agentadapter.agents import GuardrailResult, LLMAgent, input_guardrail, tool
from agentadapter.orchestrator import (
    Parallel,
    RunLimits,
    RunOptions,
    Sequential,
    StepPolicy,
    StrategyError,
    coerce_strategy,
)


@input_guardrail
def no_secrets(context, text: str) -> GuardrailResult:
    return GuardrailResult(tripwire_triggered="secret" in text, info="mentions a secret")


async def test_a_tripped_guardrail_is_an_event_and_fails_the_step_without_retry(orchestrator):
    guarded = LLMAgent("guarded", model="test/echo", input_guardrails=[no_secrets])
    events = []
    result = await orchestrator.run("tell me the secret", [guarded], on_event=events.append)
    assert result.status == "failed" and result.agents[0].error["type"] == "GuardrailTripped"
    assert result.agents[0].attempts == 1
    verdict = next(e for e in events if e.type == "guardrail")
    assert verdict.data == {"name": "no_secrets", "kind": "input", "tripwire_triggered": True}


@tool(needs_approval=True)
async def delete_everything() -> str:
    """Delete everything."""
    return "gone"




@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RunLimits(max_cost_usd=0), "max_cost_usd must be a positive"),
        (lambda: RunLimits(max_steps=0), "max_steps must be at least 1"),
        (lambda: RunLimits(timeout_s=-1), "timeout_s must be a positive"),
        (lambda: StepPolicy(timeout_s=0), "timeout_s must be a positive"),
        (lambda: StepPolicy(max_retries=-1), "max_retries must be 0 or more"),
        (lambda: StepPolicy(initial_delay_s=-1), "must not be negative"),
        (lambda: StepPolicy(jitter=2), "jitter must be between 0 and 1"),
        (lambda: Parallel("average"), "must be concat, vote, judge or first"),
        (lambda: Parallel("judge"), "needs judge=<agent name>"),
        (lambda: Parallel(quorum=0), "at least 1"),
        (lambda: Parallel(max_concurrency=0), "max_concurrency must be at least 1"),
    ],
)
def test_settings_are_validated(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_strategy_names_and_checks():
    assert coerce_strategy("vote") == Parallel("vote") and coerce_strategy(" Sequential ") == Sequential()
    assert coerce_strategy("parallel").describe() == "parallel/concat"
    with pytest.raises(StrategyError, match="quorum is 3 but the group has only 2"):
        Parallel(quorum=3).check(["a", "b"])
    with pytest.raises(StrategyError, match="at least one agent besides the judge"):
        Parallel("judge", judge="j").check(["j"])
    assert RunOptions().with_limits(max_steps=3).limits.max_steps == 3
