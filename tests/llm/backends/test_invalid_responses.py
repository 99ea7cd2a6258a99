"""A success status with a body that is not the API's (not JSON, or JSON of another shape) raises
InvalidResponseError on every backend, streamed or not; the backend does not retry it, and its
message says what came back and what to check. The loopback fakes send the fault."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agentadapter import InvalidResponseError
from agentadapter.llm.backends.anthropic import AnthropicBackend
from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.backends.cohere import CohereBackend
from agentadapter.llm.backends.gemini import GeminiBackend
from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
from agentadapter.llm.backends.openai_responses import OpenAIResponsesBackend
from agentadapter.llm.errors import APIError
from agentadapter.llm.messages import Message, Request
from fakes.anthropic_server import AnthropicFake
from fakes.cohere_server import CohereFake
from fakes.gemini_server import GeminiFake
from fakes.openai_server import OpenAIFake
from fakes.responses_server import ResponsesFake
from fakes.server import FakeServer

HTML = b"<!doctype html><html><body>Sign in to continue</body></html>"

Kind = tuple[Callable[[], FakeServer], Callable[[str], Backend], str]
KINDS: dict[str, Kind] = {
    "anthropic": (lambda: AnthropicFake(api_key=None), lambda url: AnthropicBackend(
        BackendConfig(name="anthropic", type="anthropic", base_url=url, api_key="k")), "claude-sonnet-4-5"),
    "openai": (OpenAIFake, lambda url: OpenAIChatBackend(
        BackendConfig(name="openai", type="openai", base_url=url + "/v1", api_key="k")), "gpt-4o-mini"),
    "responses": (ResponsesFake, lambda url: OpenAIResponsesBackend(
        BackendConfig(name="openai", type="openai", base_url=url + "/v1", api_key="k")), "gpt-4o-mini"),
    "cohere": (CohereFake, lambda url: CohereBackend(
        BackendConfig(name="cohere", type="cohere", base_url=url, api_key="k")), "command-a-03-2025"),
    "gemini": (lambda: GeminiFake(api_key=None), lambda url: GeminiBackend(
        BackendConfig(name="gemini", type="gemini", base_url=url, api_key="k")), "gemini-2.5-flash"),
}


@pytest.fixture(params=list(KINDS))
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FakeServer, Backend, str]]:
    make_fake, make_backend, model = KINDS[request.param]
    fake = make_fake()
    await fake.start()
    backend = make_backend(fake.url)
    yield fake, backend, model
    await backend.aclose()
    await fake.close()


def ask(model: str) -> Request:
    return Request(model, [Message.user("hi")])


async def test_an_html_page_with_status_200_is_an_invalid_response(pair: Any) -> None:
    fake, backend, model = pair
    fake.fail(200, raw=HTML, headers={"content-type": "text/html; charset=utf-8"})
    with pytest.raises(InvalidResponseError, match="not JSON") as caught:
        await backend.generate(ask(model))
    assert caught.value.retryable is False
    assert caught.value.status == 200
    assert "check the base URL" in str(caught.value)
    assert len(fake.requests) == 1


async def test_an_html_page_answering_a_stream_is_an_invalid_response(pair: Any) -> None:
    fake, backend, model = pair
    fake.fail(200, raw=HTML, headers={"content-type": "text/html"})
    with pytest.raises(InvalidResponseError, match="HTML page"):
        [event async for event in backend.stream(ask(model))]
    assert len(fake.requests) == 1


async def test_truncated_json_is_an_invalid_response(pair: Any) -> None:
    fake, backend, model = pair
    fake.fail(200, raw=b'{"id": "x", "content": [', headers={"content-type": "application/json"})
    with pytest.raises(InvalidResponseError, match="not JSON"):
        await backend.generate(ask(model))


async def test_json_of_another_shape_is_an_invalid_response(pair: Any) -> None:
    fake, backend, model = pair
    fake.fail(200, raw=b'["not", "an", "object"]', headers={"content-type": "application/json"})
    with pytest.raises(InvalidResponseError) as caught:
        await backend.generate(ask(model))
    assert isinstance(caught.value, APIError)  # still an APIError for callers that catch those
