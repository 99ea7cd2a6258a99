"""Logs never contain an API key; metrics count calls; spans follow the GenAI conventions."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from agentadapter import LLM
from agentadapter.observability.logging import configure_logging, get_logger, redact
from fakes.anthropic_server import AnthropicFake
from fakes.openai_server import OpenAIFake

OPENAI_KEY = "sk-proj-secretvalue-1234567890abcdef"
ANTHROPIC_KEY = "sk-ant-test-key"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[OpenAIFake, AnthropicFake]]:
    openai, anthropic = OpenAIFake(), AnthropicFake(api_key=ANTHROPIC_KEY)
    await openai.start()
    await anthropic.start()
    yield openai, anthropic
    await openai.close()
    await anthropic.close()


@pytest.fixture
def log_stream() -> AsyncIterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    yield stream
    root = logging.getLogger("agentadapter")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.NOTSET)
    root.propagate = True


async def test_logs_never_contain_an_api_key(fakes, log_stream):
    openai, anthropic = fakes
    environ = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{openai.url}/v1",
               "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": anthropic.url}
    llm = LLM(config={}, environ=environ)
    openai.reply("hello")
    await llm.generate("openai/gpt-4o-mini", "hi")
    anthropic.reply("hello")
    await llm.stream("anthropic/claude-sonnet-4-5", "hi").collect()
    # A provider that echoes the key back in its error body must not leak it either.
    openai.fail(401, {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}"}})
    with pytest.raises(Exception, match="HTTP 401"):
        await llm.generate("openai/gpt-4o-mini", "hi")
    get_logger("agentadapter.test").warning("oops %s", OPENAI_KEY, extra={"api_key": "other-secret-value"})
    await llm.aclose()

    lines = log_stream.getvalue().splitlines()
    assert any('"http.request"' in line for line in lines)  # DEBUG really was on
    assert any('"llm.call"' in line for line in lines)
    for line in lines:
        json.loads(line)  # every line is JSON
        for secret in (OPENAI_KEY, ANTHROPIC_KEY, "other-secret-value"):
            assert secret not in line, line


def test_redact_masks_secret_fields():
    assert redact({"headers": {"Authorization": "Bearer x", "x-api-key": "k", "accept": "json"}}) == {
        "headers": {"Authorization": "[REDACTED]", "x-api-key": "[REDACTED]", "accept": "json"}}


async def test_metrics_count_calls_tokens_and_errors(fakes):
    openai, _ = fakes
    llm = LLM(config={}, environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"{openai.url}/v1"})
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    before = REGISTRY.get_sample_value("agentadapter_llm_requests_total", {**labels, "outcome": "ok"}) or 0
    openai.reply("hi", usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    await llm.generate("openai/gpt-4o-mini", "hi")
    openai.fail(400, {"error": {"message": "bad"}})
    with pytest.raises(Exception, match="HTTP 400"):
        await llm.generate("openai/gpt-4o-mini", "hi")
    assert REGISTRY.get_sample_value("agentadapter_llm_requests_total", {**labels, "outcome": "ok"}) == before + 1
    assert REGISTRY.get_sample_value("agentadapter_llm_errors_total",
                                     {**labels, "error_type": "BadRequestError"}) >= 1
    assert REGISTRY.get_sample_value("agentadapter_llm_tokens_total", {**labels, "kind": "input"}) >= 7
    assert REGISTRY.get_sample_value("agentadapter_llm_request_duration_seconds_count", labels) >= 1
    assert REGISTRY.get_sample_value("agentadapter_llm_in_flight", {"target": "openai/gpt-4o-mini"}) == 0
    await llm.aclose()


async def test_closing_a_stream_after_its_finish_event_books_one_success_not_a_cancel(fakes):
    openai, _ = fakes
    llm = LLM(config={}, environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"{openai.url}/v1"})
    target = {"target": "openai/gpt-4.1-nano"}
    before = REGISTRY.get_sample_value("agentadapter_llm_in_flight", target) or 0.0
    stream = llm.stream("openai/gpt-4.1-nano", "hi")
    events = stream.__aiter__()
    async for event in events:
        if event.kind == "finish":
            break  # a consumer that stops reading at the finish event closes the generator
    await events.aclose()  # type: ignore[attr-defined]
    # The inner generators (router, target) are closed by the loop's async-generator finalizer.
    del events, stream
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)
    assert REGISTRY.get_sample_value("agentadapter_llm_in_flight", target) == before
    health = llm.health()["openai/gpt-4.1-nano"].to_dict()
    assert (health["calls"], health["successes"], health["failures"], health["in_flight"]) == (1, 1, 0, 0), health
    await llm.aclose()


async def test_genai_spans_only_with_a_configured_exporter(fakes):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentadapter.llm.telemetry import Telemetry

    openai, _ = fakes
    environ = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"{openai.url}/v1"}
    telemetry = Telemetry()
    llm = LLM(config={}, environ=environ, telemetry=telemetry)
    openai.reply("no tracer yet")
    await llm.generate("openai/gpt-4o-mini", "hi")  # no provider installed: no span, no error

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry._tracer_if_configured = lambda: provider.get_tracer("agentadapter")  # type: ignore[method-assign]
    openai.reply("traced", usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    await llm.generate("openai/gpt-4o-mini", "hi", max_tokens=10, temperature=0.1)
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.system"] == "openai"
    assert span.attributes["gen_ai.request.max_tokens"] == 10
    assert span.attributes["gen_ai.usage.input_tokens"] == 5
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    await llm.aclose()


async def test_genai_spans_are_client_spans_naming_the_provider_and_the_server(fakes):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode

    from agentadapter.llm.telemetry import Telemetry

    openai, anthropic = fakes
    config = {"backends": {
        "grok-acct": {"type": "xai", "base_url": f"{openai.url}/v1", "api_key": "k"},
        "work-claude": {"type": "anthropic", "base_url": anthropic.url, "api_key": ANTHROPIC_KEY},
    }}
    telemetry = Telemetry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry._tracer_if_configured = lambda: provider.get_tracer("agentadapter")  # type: ignore[method-assign]
    llm = LLM(config=config, environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"{openai.url}/v1"},
              telemetry=telemetry)
    openai.reply("a")
    await llm.generate("openai/gpt-4o-mini", "hi")
    openai.reply("b")
    await llm.generate("grok-acct/grok-4", "hi")
    anthropic.reply("c")
    await llm.stream("work-claude/claude-sonnet-4-5", "hi").collect()
    openai.fail(400, {"error": {"message": "bad"}})
    with pytest.raises(Exception, match="HTTP 400"):
        await llm.generate("openai/gpt-4o-mini", "hi")
    await llm.aclose()

    spans = exporter.get_finished_spans()
    assert all(span.kind is SpanKind.CLIENT for span in spans)
    seen = [(s.name, s.attributes["gen_ai.provider.name"], s.attributes["agentadapter.backend"],
             s.attributes["server.address"], s.attributes["server.port"]) for s in spans]
    assert seen == [
        ("chat gpt-4o-mini", "openai", "openai", "127.0.0.1", openai.port),
        ("chat grok-4", "x_ai", "grok-acct", "127.0.0.1", openai.port),
        ("chat claude-sonnet-4-5", "anthropic", "work-claude", "127.0.0.1", anthropic.port),
        ("chat gpt-4o-mini", "openai", "openai", "127.0.0.1", openai.port),
    ]
    failed = spans[-1]
    assert failed.attributes["error.type"] == "BadRequestError"
    assert failed.status.status_code is StatusCode.ERROR
    assert spans[2].attributes["gen_ai.operation.name"] == "chat"


@pytest.mark.parametrize(("backend_type", "base_url", "expected"), [
    ("openai", None, ("openai", "api.openai.com", 443)),
    ("azure", "https://myres.openai.azure.com/openai/v1", ("azure.ai.openai", "myres.openai.azure.com", 443)),
    ("gemini", None, ("gcp.gemini", "generativelanguage.googleapis.com", 443)),
    ("claude", None, ("anthropic", "api.anthropic.com", 443)),  # a type alias
    ("mistral", None, ("mistral_ai", "api.mistral.ai", 443)),
    ("cohere", None, ("cohere", "api.cohere.com", 443)),
    ("deepseek", None, ("deepseek", "api.deepseek.com", 443)),
    ("groq", None, ("groq", "api.groq.com", 443)),
    ("ollama", None, ("ollama", "localhost", 11434)),  # not in the conventions' list: its own name
    ("vllm", "http://gpu-box/v1", ("vllm", "gpu-box", 80)),
])
def test_provider_names_follow_the_genai_conventions(backend_type, base_url, expected):
    from agentadapter.llm.backends.base import BackendConfig
    from agentadapter.llm.backends.testing import FunctionBackend
    from agentadapter.llm.telemetry import target_attributes

    backend = FunctionBackend(lambda request: "x", name="mine")
    backend.config = BackendConfig(name="mine", type=backend_type, base_url=base_url)
    attributes = target_attributes("mine", backend)
    assert (attributes["gen_ai.provider.name"], attributes["server.address"], attributes["server.port"]) == expected
    assert attributes["agentadapter.backend"] == "mine"
