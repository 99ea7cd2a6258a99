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

        def last_request_body(self):
            return None

    report = await backend_conformance.run_conformance(lambda: FunctionBackend(lambda r: "wrong"), Silent(), "m")
    assert not report.passed
    # It answers consistently (its stream equals its generate), but wrongly everywhere else.
    assert {r.name for r in report.failures()} == set(backend_conformance.CHECKS) - {"stream_equals_generate"}
    assert "FAIL text" in str(report)


async def test_a_backend_that_drops_tool_results_fails_the_round_trip() -> None:
    """The model may answer well without seeing a result; the kit reads what the server received."""
    from dataclasses import replace

    from agentadapter.llm.backends.base import BackendConfig
    from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
    from agentadapter.llm.messages import Message, Request, ToolResultPart
    from fakes.openai_server import OpenAIFake

    class Forgetful(OpenAIChatBackend):
        async def generate(self, request: Request):  # type: ignore[override]
            blanked = [
                Message(m.role, [replace(p, content="") if isinstance(p, ToolResultPart) else p for p in m.parts])
                for m in request.messages
            ]
            return await super().generate(replace(request, messages=blanked))

    async with OpenAIFake() as fake:
        made: list[Forgetful] = []

        def make() -> Forgetful:
            made.append(Forgetful(BackendConfig(name="openai", type="openai", base_url=fake.url + "/v1",
                                                api_key="k")))
            return made[-1]

        with pytest.raises(backend_conformance.ConformanceFailure, match="tool results never reached the server"):
            await backend_conformance.CHECKS["tool_round_trip"](make, fake, "gpt-4o-mini")
        for backend in made:
            await backend.aclose()


async def test_the_kit_closes_every_backend_it_makes_and_every_stream_it_opens() -> None:
    from agentadapter.llm.backends.base import BackendConfig
    from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
    from fakes.openai_server import OpenAIFake

    closed: list[str] = []
    streams_closed: list[bool] = []

    class Counted(OpenAIChatBackend):
        async def aclose(self) -> None:
            closed.append(self.name)
            await super().aclose()

        async def stream(self, request):  # type: ignore[override]
            try:
                async for event in super().stream(request):
                    yield event
            finally:
                streams_closed.append(True)

    async with OpenAIFake() as fake:
        made: list[Counted] = []

        def make() -> Counted:
            made.append(Counted(BackendConfig(name="openai", type="openai", base_url=fake.url + "/v1", api_key="k")))
            return made[-1]

        report = await backend_conformance.run_conformance(make, fake, "gpt-4o-mini")
        assert report.passed, str(report)
        assert made and len(closed) == len(made)  # one aclose per backend, failed checks included
        assert streams_closed  # every stream the kit opened was closed
        # A failing check closes its backend too.
        fake.fail(500, {"error": {"message": "boom"}})
        before = len(closed)
        with pytest.raises(Exception, match="boom"):
            await backend_conformance.CHECKS["text"](make, fake, "gpt-4o-mini")
        assert len(closed) == before + 1
