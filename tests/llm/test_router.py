"""Routes end to end through the facade: failover with attempts, breakers, strategies, nesting,
client-side limits and health."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from agentadapter import LLM
from agentadapter.llm import catalog
from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.errors import (
    AllTargetsFailedError,
    CircuitOpenError,
    RateLimitError,
    ServerError,
    error_from_response,
)
from agentadapter.llm.messages import Response, TextPart, Usage
from agentadapter.llm.policy.retry import RetryPolicy

FAST = RetryPolicy(max_retries=1, initial_delay=0.0, max_delay=0.0)


class Flaky:
    """A scripted backend function: fails while ``down`` is set, else answers its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down = False
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        if self.down:
            raise error_from_response(503, {"error": {"message": "unavailable"}}, {}, provider=self.name,
                                      model=request.model)
        return Response(id=str(self.calls), provider=self.name, model=request.model, parts=[TextPart(self.name)],
                        usage=Usage(10, 5))


def make_llm(config: dict, *names: str, **kwargs) -> tuple[LLM, dict[str, Flaky]]:
    fns = {name: Flaky(name) for name in names}
    backends = {name: FunctionBackend(fn, name=name) for name, fn in fns.items()}
    return LLM(config=config, backends=backends, environ={}, retry=kwargs.pop("retry", FAST), **kwargs), fns


async def test_primary_down_backup_answers_and_attempts_tell_the_story():
    llm, fns = make_llm({"models": {"smart": {"targets": ["a/m", "b/m"]}}}, "a", "b")
    fns["a"].down = True
    response = await llm.generate("smart", "hi")
    assert response.text == "b"
    assert [(a.target, a.error_type, a.retries) for a in response.attempts] == [
        ("a/m", "OverloadedError", 1), ("b/m", None, 0)]


async def test_breaker_opens_then_skips_the_primary_without_calling_it_then_recovers():
    config = {"models": {"smart": {"targets": ["a/m", "b/m"]}},
              "breaker": {"failure_threshold": 2, "cooldown_s": 0.0}}
    llm, fns = make_llm(config, "a", "b", retry=RetryPolicy(max_retries=0))
    fns["a"].down = True
    await llm.generate("smart", "1")
    await llm.generate("smart", "2")
    assert llm.health()["a/m"].breaker == "open"
    # cooldown 0: the next call probes the primary (half-open); it fails and reopens.
    calls_before = fns["a"].calls
    await llm.generate("smart", "3")
    assert fns["a"].calls == calls_before + 1
    fns["a"].down = False
    assert (await llm.generate("smart", "4")).text == "a"
    assert llm.health()["a/m"].breaker == "closed"


async def test_open_breaker_rejects_at_once():
    config = {"breaker": {"failure_threshold": 1, "cooldown_s": 60}}
    llm, fns = make_llm(config, "a", retry=RetryPolicy(max_retries=0))
    fns["a"].down = True
    with pytest.raises(ServerError):
        await llm.generate("a/m", "hi")
    with pytest.raises(CircuitOpenError, match="breaker is open"):
        await llm.generate("a/m", "hi")
    assert fns["a"].calls == 1


async def test_cost_route_picks_the_cheapest_capable_target():
    catalog.override("pricey/m", pricing={"input": 10.0, "output": 30.0}, tools=True)
    catalog.override("cheap/m", pricing={"input": 0.1, "output": 0.2}, tools=True)
    catalog.override("notools/m", pricing={"input": 0.01, "output": 0.01}, tools=False)
    config = {"models": {"c": {"strategy": "cost", "targets": ["pricey/m", "notools/m", "cheap/m"]}}}
    llm, _ = make_llm(config, "pricey", "cheap", "notools")
    assert (await llm.generate("c", "hi")).text == "notools"  # cheapest of all when no tools are needed

    def f(x: int) -> int:
        """Double."""
        return x

    response = await llm.generate("c", "hi", tools=[f])
    assert response.text == "cheap"  # the cheapest that supports tools
    assert [a.target for a in response.attempts] == ["cheap/m"]


async def test_latency_route_prefers_the_faster_target():
    config = {"models": {"fast": {"strategy": "latency", "targets": ["a/m", "b/m"]}}}
    llm, _ = make_llm(config, "a", "b")
    llm.reliability.stats("a/m").ewma_latency_ms = 900.0
    llm.reliability.stats("b/m").ewma_latency_ms = 20.0
    assert (await llm.generate("fast", "hi")).text == "b"


async def test_least_busy_route():
    config = {"models": {"lb": {"strategy": "least_busy", "targets": ["a/m", "b/m"]}}}
    llm, _ = make_llm(config, "a", "b")
    llm.reliability.stats("a/m").in_flight = 3
    assert (await llm.generate("lb", "hi")).text == "b"


async def test_weighted_route_follows_weights():
    config = {"models": {"w": {"strategy": "weighted", "targets": ["a/m", "b/m"], "weights": [9, 1]}}}
    llm, _ = make_llm(config, "a", "b")
    llm._router_context.rng = random.Random(7)
    picks = Counter([(await llm.generate("w", "hi")).text for _ in range(400)])
    assert 0.8 < picks["a"] / 400 < 0.97


async def test_routes_nest():
    config = {"models": {
        "pair": {"targets": ["a/m", "b/m"]},
        "outer": {"strategy": "failover", "targets": ["pair", "c/m"]},
    }}
    llm, fns = make_llm(config, "a", "b", "c")
    fns["a"].down = fns["b"].down = True
    response = await llm.generate("outer", "hi")
    assert response.text == "c"
    assert [a.target for a in response.attempts] == ["a/m", "b/m", "c/m"]
    fns["c"].down = True
    with pytest.raises(AllTargetsFailedError) as caught:
        await llm.generate("outer", "hi")
    assert [a.target for a in caught.value.attempts] == ["a/m", "b/m", "c/m"]


async def test_stream_fails_over_and_reports_attempts():
    llm, fns = make_llm({"models": {"s": {"targets": ["a/m", "b/m"]}}}, "a", "b")
    fns["a"].down = True
    stream = llm.stream("s", "hi")
    events = [e async for e in stream]
    assert events[-1].kind == "finish"
    assert stream.response is not None and stream.response.text == "b"
    assert [a.target for a in stream.response.attempts] == ["a/m", "b/m"]


async def test_client_side_limits_hold_and_fail_over():
    config = {"models": {"s": {"targets": ["a/m", "b/m"]}},
              "backends": {"a": {"type": "custom", "base_url": "http://127.0.0.1:9/v1",
                                 "rate_limit": {"requests_per_minute": 2, "mode": "fail"}}}}
    llm, _fns = make_llm(config, "a", "b")
    texts = [(await llm.generate("s", "hi")).text for _ in range(4)]
    assert texts == ["a", "a", "b", "b"]  # two per minute on a, then the limit sends calls on
    with pytest.raises(RateLimitError, match="client-side limit"):
        await llm.generate("a/m", "hi")


async def test_health_reports_every_target():
    llm, fns = make_llm({"models": {"s": {"targets": ["a/m", "b/m"]}}}, "a", "b")
    fns["a"].down = True
    for _ in range(3):
        await llm.generate("s", "hi")
    health = llm.health()
    # 3 calls x (1 try + 1 retry) would be 6, but the breaker opens at 5 consecutive failures.
    assert health["a/m"].failures == 5 and health["a/m"].success_rate == 0.0
    assert health["a/m"].breaker == "open" and health["a/m"].last_error == "OverloadedError"
    assert health["b/m"].successes == 3 and health["b/m"].p50_ms is not None
    assert health["b/m"].to_dict()["in_flight"] == 0


async def test_unknown_strategy_is_refused():
    from agentadapter.llm.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        LLM(config={"models": {"x": {"strategy": "random", "targets": ["a/m"]}}})


# ------------------------------------------------------- misconfigured targets, over real HTTP


@pytest.fixture
async def two_accounts():
    from fakes.openai_server import OpenAIFake

    async with OpenAIFake() as first, OpenAIFake() as second:
        config = {
            "backends": {
                "acct-a": {"type": "openai", "base_url": f"{first.url}/v1", "api_key": "key-a"},
                "acct-b": {"type": "openai", "base_url": f"{second.url}/v1", "api_key": "key-b"},
            },
            "models": {"smart": {"strategy": "failover", "targets": ["acct-a/gpt-4o-mini", "acct-b/gpt-4o-mini"]}},
        }
        llm = LLM(config=config, environ={}, retry=FAST)
        yield llm, first, second
        await llm.aclose()


@pytest.mark.parametrize(("fault", "error_type"), [
    ({"status": 401, "body": {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}},
     "AuthenticationError"),
    ({"status": 403, "body": {"error": {"message": "Project does not have access to model gpt-4o-mini"}}},
     "PermissionDeniedError"),
    ({"status": 200, "raw": b"<html><body>Sign in to the proxy</body></html>",
      "headers": {"content-type": "text/html"}}, "InvalidResponseError"),
])
async def test_a_misconfigured_target_fails_over_by_default(two_accounts, fault, error_type):
    llm, first, second = two_accounts
    first.fail(**fault)
    second.reply("from b")
    response = await llm.generate("smart", "hi")
    assert response.text == "from b"
    # Moved on at once: a wrong key or URL answers the same on a retry.
    assert [(a.target, a.error_type, a.retries) for a in response.attempts] == [
        ("acct-a/gpt-4o-mini", error_type, 0), ("acct-b/gpt-4o-mini", None, 0)]
    assert len(first.requests) == 1
    # Streams fail over the same way (nothing was emitted before the error).
    first.fail(**fault)
    second.reply("streamed from b")
    streamed = await llm.stream("smart", "hi").collect()
    assert streamed.text == "streamed from b"


async def test_a_bad_request_does_not_fail_over(two_accounts):
    llm, first, second = two_accounts
    first.fail(400, {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}})
    with pytest.raises(AllTargetsFailedError) as caught:
        await llm.generate("smart", "hi")
    assert [type(e).__name__ for e in caught.value.errors] == ["BadRequestError"]
    assert len(second.requests) == 0  # every target would refuse the caller's malformed request
