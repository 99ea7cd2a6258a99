"""One deadline across retries and failover, and what a backend's ``timeout:`` bounds, over real
loopback servers on both transports, for ``generate`` and ``stream``.

The call's ``timeout=`` is one absolute deadline: no target and no retry starts after it, each try's
own limits are only shortened to what is left of it, and no transport ever gets a limit of zero
(aiohttp reads that as *no* limit). A backend's ``timeout:`` bounds the wait for the first byte and
each gap between chunks, so a stream that keeps delivering is never cut by it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentadapter import LLM
from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.errors import (
    AgentAdapterError,
    AllTargetsFailedError,
    APITimeoutError,
    ConfigurationError,
    RateLimitError,
    error_from_response,
)
from agentadapter.llm.messages import Request, Response
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.llm.transport import HTTPRequest, Timeout, create_transport
from fakes.stalling_server import StallingServer

SHORT_BACKOFF = RetryPolicy(initial_delay=0.01, max_delay=0.05)
"""The production policy (two retries), with back-offs short enough for a test."""


@pytest.fixture
async def server() -> AsyncIterator[StallingServer]:
    async with StallingServer(interval=0.1, chunks=10) as fake:
        yield fake


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def backend(server: StallingServer, kind: str, **settings: Any) -> dict[str, Any]:
    return {"type": "custom", "base_url": server.url_for(kind), **settings}


def route_llm(transport: str, backends: dict[str, dict[str, Any]], **kwargs: Any) -> LLM:
    config = {"backends": backends,
              "models": {"route": {"strategy": "failover", "targets": [f"{name}/m" for name in backends]}}}
    return LLM(config=config, environ={}, transport=transport, **kwargs)


async def call(llm: LLM, mode: str, model: str = "route", **settings: Any) -> Response:
    if mode == "generate":
        return await llm.generate(model, "hi", **settings)
    return await llm.stream(model, "hi", **settings).collect()


async def timed_failure(llm: LLM, mode: str, timeout: float) -> tuple[float, BaseException]:
    began = time.monotonic()
    try:
        await call(llm, mode, timeout=timeout)
    except AgentAdapterError as exc:
        return time.monotonic() - began, exc
    raise AssertionError(f"{mode} over stalling targets answered")


# ------------------------------------------------------------------------ the acceptance criterion


async def test_two_stalling_targets_give_up_within_the_deadline(server: StallingServer, transport: str):
    # Two routes over a target that never answers and one that sends headers then stalls:
    # "eager", with the backends' default per-try limit (600 s), where the first target uses the
    # whole deadline and the second must not be called at all; and "per_try", where the first gives
    # up after its own 2.5 s and the second gets what is left (1.5 s), not "no limit".
    eager = route_llm(transport, {"silent": backend(server, "silent"), "headers": backend(server, "headers")})
    per_try = route_llm(transport, {
        "silent": backend(server, "silent", timeout=2.5, max_retries=0),
        "headers": backend(server, "headers"),
    })
    runs = {(name, mode): timed_failure(llm, mode, timeout=4)
            for name, llm in (("eager", eager), ("per_try", per_try)) for mode in ("generate", "stream")}
    outcomes = dict(zip(runs, await asyncio.gather(*runs.values()), strict=True))
    for (name, mode), (elapsed, error) in outcomes.items():
        assert elapsed < 4.5, f"{name} {mode} on {transport} gave up after {elapsed:.2f} s, past its 4 s deadline"
        assert isinstance(error, AllTargetsFailedError), (name, mode, error)
        assert "deadline (timeout=4s) passed" in str(error)
        assert [a.target for a in error.attempts] == ["silent/m", "headers/m"]
        assert all(isinstance(e, APITimeoutError) for e in error.errors)
        second = str(error.errors[1])
        if name == "eager":
            assert "passed before headers/m could be tried" in second and not error.errors[1].retryable
        else:
            assert "did not answer" in second  # tried, with what was left of the deadline
    assert server.arrived["headers"] == 2  # only the per_try route's two calls reached the second target
    await eager.aclose()
    await per_try.aclose()


# ------------------------------------------------------------------------- per-try limits, capped


@pytest.mark.parametrize("mode", ["generate", "stream"])
async def test_a_stalled_primary_gives_way_to_the_backup_within_the_deadline(
    server: StallingServer, transport: str, mode: str
):
    llm = route_llm(transport, {"primary": backend(server, "silent", timeout=0.3), "backup": backend(server, "ok")},
                    retry=SHORT_BACKOFF)
    response = await call(llm, mode, timeout=4)
    assert response.text.strip().startswith("ok" if mode == "generate" else "w0")
    # The primary's own 0.3 s held for each of its three tries; the call's deadline did not replace it.
    assert [(a.target, a.error_type, a.retries) for a in response.attempts] == [
        ("primary/m", "APITimeoutError", 2), ("backup/m", None, 0)]
    # No try beyond those three reached the server (on a loaded machine one may be cut by its 0.3 s before the
    # server has read it, so fewer can arrive).
    assert 1 <= server.arrived["silent"] <= 3
    await llm.aclose()


async def test_the_per_try_limit_is_shortened_by_the_deadline_never_replaced(server: StallingServer):
    llm = route_llm("aiohttp", {"short": backend(server, "ok", timeout=1), "long": backend(server, "ok", timeout=60)})
    request = llm.request("hi", timeout=4)
    short = llm.backend("short").http_request("POST", server.url, request, body={})
    long = llm.backend("long").http_request("POST", server.url, request, body={})
    assert short.timeout.read == 1 and short.timeout.connect == 1  # the backend's own limit holds
    assert short.timeout.total is not None and 3 < short.timeout.total <= 4  # within what is left
    assert long.timeout.read <= 4 and long.timeout.total is not None and long.timeout.total <= 4
    assert llm.backend("short").config.timeout == Timeout(connect=1, read=1, total=None)
    assert llm.backend("long").config.timeout == Timeout(connect=10, read=60, total=None)
    no_deadline = llm.backend("long").http_request("POST", server.url, llm.request("hi"), body={})
    assert no_deadline.timeout.total is None  # no call deadline: a healthy stream has no length limit
    await llm.aclose()


# --------------------------------------------------------------------------- nothing after the deadline


@pytest.mark.parametrize("mode", ["generate", "stream"])
async def test_no_target_is_tried_once_the_deadline_has_passed(server: StallingServer, transport: str, mode: str):
    llm = route_llm(transport, {"first": backend(server, "ok"), "second": backend(server, "ok")})
    request = llm.request("hi", timeout=4)
    request.deadline = time.monotonic() - 0.001  # spent, e.g. while waiting for a budget or in a queue
    with pytest.raises(AllTargetsFailedError, match="deadline") as caught:
        if mode == "generate":
            await llm.generate_request("route", request)
        else:
            async for _ in llm.router("route").stream(request):
                pass
    assert [a.target for a in caught.value.attempts] == ["first/m"]  # and never "second/m"
    assert "passed before first/m could be tried" in str(caught.value.errors[0])
    # A single target raises the deadline's APITimeoutError itself.
    with pytest.raises(APITimeoutError, match=r"deadline \(timeout=4s\) passed before first/m"):
        await llm.generate_request("first/m", request)
    assert server.requests == []
    await llm.aclose()


@pytest.mark.parametrize("limits", [Timeout(total=0), Timeout(total=-1), Timeout(connect=0), Timeout(read=0)])
async def test_a_spent_limit_never_reaches_the_transport(server: StallingServer, transport: str, limits: Timeout):
    # aiohttp reads a limit of 0 as "no limit": such a request would wait forever; it is refused.
    http = create_transport(transport)
    request = HTTPRequest("POST", server.url_for("ok") + "/chat/completions", json={}, timeout=limits,
                          provider="fakeai", model="m")
    with pytest.raises(APITimeoutError, match="no time was left to call fakeai") as caught:
        await http.send(request)
    assert not caught.value.retryable
    with pytest.raises(APITimeoutError, match="nothing was sent"):
        async with http.stream(request):
            pass
    assert server.requests == []
    await http.aclose()


async def test_a_backoff_that_would_cross_the_deadline_is_not_slept():
    def limited(request: Request) -> Response:
        raise error_from_response(429, {"error": {"message": "slow down"}}, {"retry-after": "30"},
                                  provider="busy", model=request.model)

    busy = FunctionBackend(limited, name="busy")
    llm = LLM(config={}, backends={"busy": busy}, environ={}, retry=RetryPolicy(max_retries=3))
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    llm._router_context.sleep = record
    with pytest.raises(RateLimitError):
        await llm.generate("busy/m", "hi", timeout=5)
    assert slept == [] and len(busy.requests) == 1  # a 30 s wait cannot fit in 5 s: not started
    with pytest.raises(RateLimitError):
        await llm.generate("busy/m", "hi", timeout=60)
    assert slept == [30.0, 30.0, 30.0]  # with room for it, the server's wait is honoured
    await llm.aclose()


# ---------------------------------------------------------------- a backend timeout bounds the gaps


async def test_a_healthy_stream_outlives_the_backend_timeout(server: StallingServer, transport: str):
    # Ten chunks 0.1 s apart: about 1 s of stream, twice the per-try timeout of 0.5 s.
    llm = route_llm(transport, {"slow": backend(server, "trickle", timeout=0.5, max_retries=0)})
    events = [event async for event in llm.stream("slow/m", "hi")]
    text = "".join(event.text for event in events if event.kind == "text")
    assert text.split() == [f"w{index}" for index in range(10)]
    assert events[-1].kind == "finish" and events[-1].response is not None
    assert events[-1].response.finish_reason == "stop"
    await llm.aclose()


async def test_a_stream_that_goes_quiet_mid_way_times_out(server: StallingServer, transport: str):
    llm = route_llm(transport, {"quiet": backend(server, "stall-mid", timeout=0.3)}, retry=SHORT_BACKOFF)
    received: list[str] = []
    with pytest.raises(APITimeoutError, match="did not answer"):
        async for event in llm.stream("quiet/m", "hi"):
            if event.kind == "text":
                received.append(event.text)
    assert "".join(received).split() == [f"w{index}" for index in range(10)]
    assert server.arrived["stall-mid"] == 1  # content was emitted: never retried
    await llm.aclose()


async def test_the_call_deadline_still_bounds_a_stream_that_keeps_delivering(server: StallingServer, transport: str):
    # Chunks every 0.1 s never trip the backend's 0.4 s gap limit, but the call's 0.5 s deadline ends it.
    llm = route_llm(transport, {"slow": backend(server, "trickle", timeout=0.4, max_retries=0)})
    received: list[str] = []
    with pytest.raises(APITimeoutError):
        async for event in llm.stream("slow/m", "hi", timeout=0.5):
            if event.kind == "text":
                received.append(event.text)
    assert len(received) < 10
    await llm.aclose()


@pytest.mark.parametrize("seconds", [0, -1])
def test_a_backend_timeout_must_be_positive(seconds: float):
    with pytest.raises(ConfigurationError, match=r"backends\.a\.timeout"):
        LLM(config={"backends": {"a": {"type": "custom", "base_url": "http://127.0.0.1:9", "timeout": seconds}}},
            environ={})
