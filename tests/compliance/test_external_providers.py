"""A provider the tenant marks external sees placeholders, never the personal data; the run sees the real values."""

from __future__ import annotations

import json

from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.messages import Request
from agentadapter.testing import offline_llm
from server.conftest import AppFactory

TASK = "Write to jane.doe@example.com or call +44 20 7946 0958 about card 4111 1111 1111 1111"


def _echo(request: Request) -> str:
    return "Noted: " + " ".join(
        p.text for m in request.messages if m.role == "user" for p in m.parts if hasattr(p, "text")
    )


async def test_calls_to_an_external_provider_carry_placeholders(make_api: AppFactory) -> None:
    external = FunctionBackend(_echo, name="extprov")
    internal = FunctionBackend(_echo, name="inhouse")
    async with make_api(llm=offline_llm(backends={"extprov": external, "inhouse": internal})) as api:
        policy = await api.request("PATCH", "/v1/compliance/policy", json={"external_providers": ["extprov"]})
        assert policy.status_code == 200, policy.text
        for backend, model in ((external, "extprov/m"), (internal, "inhouse/m")):
            agent = await api.create_agent(model=model)
            started = await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": TASK})
            assert started.status_code == 202, started.text
            run = await api.wait_run(started.json()["id"])
            assert run["status"] == "completed", run
            sent = json.dumps([[getattr(p, "text", "") for p in m.parts] for m in backend.requests[-1].messages])
            # The run's answer (and what is stored: the policy keeps) has the real values back.
            assert "jane.doe@example.com" in run["output"] and "4111 1111 1111 1111" in run["output"]
            if backend is external:
                assert "jane.doe@example.com" not in sent and "+44 20 7946 0958" not in sent
                assert "<EMAIL_1>" in sent and "<PHONE_1>" in sent and "<CARD_1>" in sent
            else:
                assert "jane.doe@example.com" in sent  # a provider not marked external gets the text as it is


async def test_a_placeholder_split_across_stream_deltas_is_restored_whole() -> None:
    from collections.abc import AsyncIterator

    from agentadapter.agents.privacy import pseudonymized
    from agentadapter.llm.messages import Response, StreamEvent, TextPart

    class Splitting(FunctionBackend):
        """Streams its answer in pieces cut inside the placeholder."""

        async def _pieces(self, request: Request) -> AsyncIterator[StreamEvent]:
            self.requests.append(request)
            pieces = ["Mail <EM", "AIL_1", "> and <PHONE_", "1>", " today <"]
            for piece in pieces:
                yield StreamEvent("text", text=piece)
            response = Response(id="r", provider="splitting", model=request.model, parts=[TextPart("".join(pieces))])
            yield StreamEvent("finish", finish_reason="stop", response=response)

        def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
            return self._pieces(request)

    backend = Splitting(lambda request: "", name="splitting")
    llm = pseudonymized(offline_llm(backends={"splitting": backend}), ["splitting"])
    stream = llm.stream("splitting/m", "jane.doe@example.com, +44 20 7946 0958")
    text = "".join([event.text async for event in stream if event.kind == "text"])
    expected = "Mail jane.doe@example.com and +44 20 7946 0958 today <"
    assert text == expected
    assert stream.response is not None and stream.response.text == expected
    sent = backend.requests[-1].messages[-1].parts[0]
    assert isinstance(sent, TextPart) and sent.text == "<EMAIL_1>, <PHONE_1>"
    await llm.aclose()
