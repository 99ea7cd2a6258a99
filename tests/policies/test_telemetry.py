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

    from agentadapter.observability.telemetry import Telemetry

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
