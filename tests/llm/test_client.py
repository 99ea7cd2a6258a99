"""The LLM facade: resolution, failover, retries, structured output, streams, sync calls."""

from __future__ import annotations

import asyncio
import json

import pydantic
import pytest

from agentadapter import LLM
from agentadapter.llm.backends.testing import FunctionBackend, TestBackend
from agentadapter.llm.errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    OutputValidationError,
    ServerError,
    error_from_response,
)
from agentadapter.llm.messages import Response, TextPart, ToolCallPart, Usage
from agentadapter.llm.policy.retry import RetryPolicy
from agentadapter.testing import offline_llm

FAST = RetryPolicy(initial_delay=0.0, max_delay=0.0)


def failing(status: int, times: int, then: str = "ok") -> FunctionBackend:
    calls = {"n": 0}

    def answer(request):
        calls["n"] += 1
        if calls["n"] <= times:
            raise error_from_response(status, {"error": {"message": "boom"}}, {}, provider="flaky", model=request.model)
        return then

    backend = FunctionBackend(answer, name="flaky")
    backend.calls = calls  # type: ignore[attr-defined]
    return backend


class City(pydantic.BaseModel):
    name: str
    population: int


async def test_echo_with_no_key_and_no_network():
    llm = offline_llm()
    response = await llm.generate("test/echo", "hello")
    assert response.text == "hello"
    assert response.cost_usd == 0.0
    assert [a.target for a in response.attempts] == ["test/echo"]


async def test_echo_only_echoes_even_when_offered_tools():
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return "sunny"

    llm = offline_llm()
    response = await llm.generate("test/echo", "weather?", tools=[get_weather], tool_choice="required")
    assert response.finish_reason == "stop" and response.tool_calls == []
    assert response.text == "weather?"
    streamed = llm.stream("test/echo", "weather?", tools=[get_weather])
    kinds = [event.kind async for event in streamed]
    assert "tool_call" not in kinds and streamed.response is not None and streamed.response.text == "weather?"


async def test_test_backend_calls_tools_then_answers_from_results():
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return "sunny"

    llm = offline_llm()
    first = await llm.generate("test/tools", "weather?", tools=[get_weather])
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert call.name == "get_weather" and isinstance(call.arguments["city"], str)
    followup = [
        {"role": "user", "content": "weather?"},
        first.message,
        {"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": "sunny"},
    ]
    second = await llm.generate("test/tools", followup, tools=[get_weather])
    assert second.text == "get_weather: sunny"


async def test_structured_output_is_validated():
    llm = offline_llm()
    response = await llm.generate("test/echo", "a city", output=City)
    assert isinstance(response.output, City)
    bad = FunctionBackend(lambda request: '{"name": "Oslo"}', name="bad")
    with pytest.raises(OutputValidationError):
        await offline_llm(backends={"bad": bad}).generate("bad/m", "x", output=City)


async def test_inline_failover_records_every_attempt():
    llm = LLM(config={}, backends={"flaky": failing(500, 99), "test": TestBackend()}, environ={}, retry=FAST)
    response = await llm.generate(["flaky/a", "test/echo"], "hi")
    assert response.text == "hi"
    assert [(a.target, a.error_type, a.retries) for a in response.attempts] == [
        ("flaky/a", "ServerError", 2),
        ("test/echo", None, 0),
    ]


async def test_alias_route_from_config_and_all_failed():
    config = {"models": {"smart": {"strategy": "failover", "targets": ["flaky/a", "other/b"]}}}
    backends = {"flaky": failing(503, 99), "other": failing(502, 99)}
    llm = LLM(config=config, backends=backends, environ={}, retry=FAST)
    with pytest.raises(AllTargetsFailedError) as caught:
        await llm.generate("smart", "hi")
    assert [type(e) for e in caught.value.errors] == [ServerError, ServerError]
    assert "flaky/a" in str(caught.value)


async def test_caller_errors_do_not_fail_over():
    backends = {"flaky": failing(400, 99), "test": TestBackend()}
    llm = LLM(config={}, backends=backends, environ={}, retry=FAST)
    with pytest.raises(AllTargetsFailedError) as caught:
        await llm.generate(["flaky/a", "test/echo"], "hi")
    assert type(caught.value.errors[0]) is BadRequestError
    assert backends["flaky"].calls["n"] == 1  # type: ignore[attr-defined]


async def test_a_misconfigured_target_fails_over_without_a_retry():
    backends = {"flaky": failing(401, 99), "test": TestBackend()}
    llm = LLM(config={}, backends=backends, environ={}, retry=FAST)
    response = await llm.generate(["flaky/a", "test/echo"], "hi")
    assert response.text == "hi"
    assert response.attempts[0].error_type == AuthenticationError.__name__
    assert backends["flaky"].calls["n"] == 1  # type: ignore[attr-defined]


async def test_context_window_failover_is_opt_in():
    backends = {"small": failing(400, 99), "big": TestBackend()}
    backends["small"].function = lambda r: (_ for _ in ()).throw(
        error_from_response(400, {"error": {"message": "maximum context length exceeded"}}, {}, provider="small", model="m")
    )
    plain = LLM(config={"models": {"r": {"targets": ["small/m", "big/m"]}}}, backends=backends, environ={})
    with pytest.raises(AllTargetsFailedError) as caught:
        await plain.generate("r", "hi")
    assert isinstance(caught.value.errors[0], ContextWindowExceededError)
    opted = LLM(
        config={"models": {"r": {"targets": ["small/m", "big/m"], "failover_on": ["context_window"]}}},
        backends=backends, environ={},
    )
    assert (await opted.generate("r", "hi")).text == "hi"


async def test_retries_then_succeeds():
    backend = failing(429, 2)
    llm = LLM(config={}, backends={"flaky": backend}, environ={}, retry=FAST)
    response = await llm.generate("flaky/a", "x")
    assert response.text == "ok" and response.attempts[0].retries == 2


async def test_stream_equals_generate_and_reports_cost():
    llm = offline_llm()
    stream = llm.stream("test/echo", "one two three")
    kinds = [event.kind async for event in stream]
    assert kinds == ["text", "text", "text", "usage", "finish"]
    generated = await llm.generate("test/echo", "one two three")
    assert stream.response is not None
    assert stream.response.parts == generated.parts and stream.response.usage == generated.usage
    assert stream.response.cost_usd == 0.0
    with pytest.raises(InvalidRequestError, match="only once"):
        async for _ in stream:
            pass


async def test_stream_fails_over_before_the_first_event():
    llm = LLM(config={}, backends={"flaky": failing(500, 99), "test": TestBackend()}, environ={}, retry=FAST)
    response = await llm.stream(["flaky/a", "test/echo"], "hi there").collect()
    assert response.text == "hi there"
    assert [a.error_type for a in response.attempts] == ["ServerError", None]


async def test_stream_never_retries_after_content():
    class Breaks(TestBackend):
        async def stream(self, request):
            async for event in super().stream(request):
                yield event
                if event.kind == "text":
                    raise error_from_response(500, {}, {}, provider="test", model="m")

    backend = Breaks()
    llm = LLM(config={}, backends={"test": backend}, environ={}, retry=FAST)
    with pytest.raises(ServerError):
        async for _ in llm.stream("test/echo", "a b c"):
            pass
    assert backend.calls == 1


async def test_structured_stream_output():
    llm = offline_llm()
    stream = llm.stream("test/echo", "city", output=City)
    response = await stream.collect()
    assert isinstance(response.output, City)


def test_generate_sync_reuses_one_loop():
    llm = offline_llm()
    assert llm.generate_sync("test/echo", "a").text == "a"
    assert llm.generate_sync("test/echo", "b").text == "b"
    assert llm._loop_thread is not None
    loop = llm._loop_thread.loop
    llm.generate_sync("test/echo", "c")
    assert llm._loop_thread.loop is loop
    llm.close()
    assert llm._loop_thread is None


async def test_generate_sync_refuses_its_own_loop():
    llm = offline_llm()
    llm.generate_sync("test/echo", "warm up")  # starts the background loop

    async def inside():
        return llm.generate_sync("test/echo", "x")

    assert llm._loop_thread is not None
    future = asyncio.run_coroutine_threadsafe(inside(), llm._loop_thread.loop)
    with pytest.raises(InvalidRequestError, match="its own event loop"):
        await asyncio.wrap_future(future)
    llm.close()


async def test_vision_and_tool_use_conveniences(tmp_path):
    seen = []

    def answer(request):
        seen.append(request)
        return [ToolCallPart("c1", "f", {})] if request.tools else "an image"

    llm = offline_llm(backends={"fn": FunctionBackend(answer)})
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG....")
    response = await llm.vision("fn/m", "what?", [str(png), "https://x/y.jpg", b"\xff\xd8\xff...."])
    assert response.text == "an image"
    kinds = [p.kind for p in seen[0].messages[0].parts]
    assert kinds == ["text", "image", "image", "image"]

    def f(x: int) -> int:
        """Double."""
        return x * 2

    assert (await llm.tool_use("fn/m", "go", [f])).tool_calls[0].name == "f"
    with pytest.raises(InvalidRequestError):
        await llm.tool_use("fn/m", "go", [])
    with pytest.raises(InvalidRequestError):
        await llm.vision("fn/m", "what?", [])
    with pytest.raises(InvalidRequestError, match="image type"):
        await llm.vision("fn/m", "what?", [b"????"])


async def test_bad_input_fails_before_the_network():
    llm = offline_llm()
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY is not set"):
        await llm.generate("openai/gpt-4o-mini", "hi")
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'"):
        await llm.generate("nope/x", "hi")
    with pytest.raises(ConfigurationError, match="not a provider/model id"):
        await llm.generate("gpt-4o", "hi")
    with pytest.raises(InvalidRequestError, match="unknown setting"):
        await llm.generate("test/echo", "hi", temprature=0.2)
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        await llm.generate("test/echo", "hi", tool_choice="missing")
    with pytest.raises(InvalidRequestError, match="timeout"):
        await llm.generate("test/echo", "hi", timeout=0)


async def test_capability_checks_for_known_models():
    from agentadapter.llm import catalog

    catalog.override("fn/textonly", vision=False, tools=False)
    llm = offline_llm(backends={"fn": FunctionBackend(lambda r: "x")})
    with pytest.raises(CapabilityError, match="does not accept images"):
        await llm.generate("fn/textonly", [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}])

    def f(x: int) -> int:
        """Double."""
        return x

    with pytest.raises(CapabilityError, match="does not support tools"):
        await llm.generate("fn/textonly", "hi", tools=[f])


async def test_cost_from_catalog_prices():
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_input_tokens=500_000)
    backend = FunctionBackend(lambda r: Response(id="1", provider="openai", model=r.model, parts=[TextPart("x")], usage=usage))
    llm = offline_llm(backends={"openai": backend})
    response = await llm.generate("openai/gpt-4o-mini", "hi")
    # 0.5M uncached x 0.15 + 0.5M cached x 0.075 + 1M out x 0.60
    assert response.cost_usd == pytest.approx(0.075 + 0.0375 + 0.6)


async def test_config_file_backends_and_seed_agents(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "secret-key-123456")
    path = tmp_path / "agentadapter.yaml"
    path.write_text(
        "backends:\n"
        "  my-vllm: {type: openai, base_url: 'http://127.0.0.1:9/v1', api_key: '${MY_KEY}'}\n"
        "models:\n"
        "  cheap: test/echo\n"
        "agents:\n"
        "  - {id: researcher, backend: {type: claude, model: claude-sonnet-4-5, api_key: k}}\n"
    )
    llm = LLM(config=path, environ={})
    assert (await llm.generate("cheap", "via alias")).text == "via alias"
    backend = llm.backend("my-vllm")
    assert backend.config.api_key == "secret-key-123456" and backend.config.base_url == "http://127.0.0.1:9/v1"
    assert backend.config.redacted()["api_key"] == "sec...3456"
    route = llm.resolver.route("researcher")
    assert route.targets[0].backend.config.type == "anthropic"
    assert route.targets[0].model == "claude-sonnet-4-5"


async def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        LLM(config=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("backends: [1, 2")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        LLM(config=bad)
    with pytest.raises(ConfigurationError, match="UNSET_VAR_XYZ is not set"):
        LLM(config={"backends": {"x": {"api_key": "${UNSET_VAR_XYZ}"}}})
    loop = LLM(config={"models": {"a": "b", "b": "a"}}, environ={})
    with pytest.raises(ConfigurationError, match="alias loop"):
        await loop.generate("a", "hi")
    llm = LLM(config={}, environ={})
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        await llm.generate("azure/gpt-4o", "hi")


def test_response_json_shape():
    response = offline_llm().generate_sync("test/echo", "hi", output=None)
    data = json.loads(json.dumps(response.to_dict()))
    assert set(data) >= {"id", "provider", "model", "text", "tool_calls", "finish_reason", "usage", "cost_usd",
                         "latency_ms", "attempts", "cached", "output"}


async def test_a_test_backend_with_latency_ms_answers_after_that_long() -> None:
    llm = LLM(config={"backends": {"slow": {"type": "test", "latency_ms": 30}}})
    backend = llm.backend("slow")
    assert isinstance(backend, TestBackend) and backend.latency_s == 0.03
    assert (await llm.generate("slow/echo", "hello")).text == "hello"
    for bad in ("soon", -1, True):
        with pytest.raises(ConfigurationError, match="latency_ms must be a non-negative number"):
            LLM(config={"backends": {"bad": {"type": "test", "latency_ms": bad}}}).backend("bad")


def test_derived_facades_watch_a_shared_backend_once() -> None:
    llm = LLM(config={"backends": {"slow": {"type": "test"}}})
    backend = llm.backend("slow")
    for _ in range(3):
        llm.derive(tags={"tenant": "t"}).backend("slow")
    assert len(backend.header_listeners) == 1


def test_penalties_are_settings_of_a_request():
    request = offline_llm().request("hi", model="test/echo", frequency_penalty=0.5, presence_penalty=-0.25)
    assert (request.frequency_penalty, request.presence_penalty) == (0.5, -0.25)
