"""The public conformance kit, run against every backend we ship (each over its loopback fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentadapter.llm.transport import AiohttpTransport
from agentadapter.testing import backend_conformance

from .adapters import Kit, build_kit

KINDS = ["openai", "mistral", "ollama", "groq", "deepseek", "anthropic", "gemini"]


@pytest.fixture(params=KINDS)
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    transport = AiohttpTransport()
    built = build_kit(request.param, transport)
    await built.server.start()
    yield built
    await built.server.close()
    await transport.aclose()


@pytest.mark.parametrize("check", list(backend_conformance.CHECKS))
async def test_conformance(kit: Kit, check: str) -> None:
    await backend_conformance.CHECKS[check](kit.make, kit.kit_server, kit.model)


async def test_run_conformance_reports_every_check(kit: Kit) -> None:
    report = await backend_conformance.run_conformance(kit.make, kit.kit_server, kit.model)
    assert report.passed, str(report)
    assert [r.name for r in report.results] == list(backend_conformance.CHECKS)


async def test_a_broken_backend_fails_the_kit() -> None:
    from agentadapter.llm.backends.testing import FunctionBackend

    class Silent:
        def queue_text(self, *a, **k): ...
        def queue_tool_calls(self, *a, **k): ...
        def queue_error(self, *a, **k): ...
        def request_count(self) -> int:
            return 0

    report = await backend_conformance.run_conformance(lambda: FunctionBackend(lambda r: "wrong"), Silent(), "m")
    assert not report.passed
    # It answers consistently (its stream equals its generate), but wrongly everywhere else.
    assert {r.name for r in report.failures()} == set(backend_conformance.CHECKS) - {"stream_equals_generate"}
    assert "FAIL text" in str(report)
