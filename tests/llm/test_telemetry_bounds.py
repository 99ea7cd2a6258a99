"""Model labels come from callers: past a cap, uncatalogued models share one series per provider, so a
flood of made-up model names cannot grow the process's metrics without bound."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from agentadapter import LLM
from agentadapter.llm.messages import Message, Request, TextPart
from agentadapter.llm.telemetry import OTHER_MODEL, Telemetry


def _models_seen(provider: str) -> set[str]:
    return {sample.labels["model"] for metric in REGISTRY.collect() if metric.name == "agentadapter_llm_requests"
            for sample in metric.samples if sample.labels.get("provider") == provider}


def test_made_up_models_past_the_cap_share_one_series() -> None:
    provider = f"cap{uuid.uuid4().hex[:8]}"
    telemetry = Telemetry(tracing=False, max_series=3, known=lambda target: target.endswith("/known"))
    request = Request(model="x", messages=[Message("user", [TextPart("hi")])])
    for index in range(50):
        record = telemetry.started(f"{provider}/made-up-{index}", request)
        telemetry.finished(record)
    record = telemetry.started(f"{provider}/known", request)
    telemetry.finished(record)
    seen = _models_seen(provider)
    assert seen == {"made-up-0", "made-up-1", "made-up-2", OTHER_MODEL, "known"}, seen


def test_the_facade_keeps_catalogued_models_apart() -> None:
    llm = LLM(config={}, environ={})
    assert llm.telemetry.known is not None
    assert llm.telemetry.known("openai/gpt-4o-mini") and not llm.telemetry.known("openai/made-up-model")
