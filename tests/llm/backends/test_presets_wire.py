"""Every OpenAI-compatible preset, end to end: the call reaches the loopback server at the path of the
preset's real base URL, with the preset's auth header, streamed and not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest

from agentadapter.llm.backends import presets
from agentadapter.llm.backends.base import BackendConfig
from agentadapter.llm.backends.openai_chat import OpenAIChatBackend
from agentadapter.llm.messages import Message, Request, TextPart, ToolCallPart, Usage
from fakes.openai_server import OpenAIFake

COMPATIBLE = [
    "openai", "azure", "groq", "xai", "deepseek", "mistral", "together", "perplexity", "openrouter",
    "fireworks", "cerebras", "huggingface", "inference_net", "ollama", "lmstudio", "vllm", "sglang", "custom",
]
LOCAL = {"ollama", "lmstudio", "vllm", "sglang", "custom"}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as server:
        yield server


def test_every_chat_preset_is_covered() -> None:
    assert sorted(COMPATIBLE) == sorted(n for n, p in presets.PRESETS.items() if p.backend == "openai_chat")
    assert {n for n in COMPATIBLE if presets.PRESETS[n].local} == LOCAL


def preset_path(name: str) -> str:
    """The path part of the preset's real base URL (custom and azure have none: pick one)."""
    base_url = presets.PRESETS[name].base_url
    if base_url is None:
        return "" if name == "azure" else "/v1"
    return urlparse(base_url).path


def expected_path(name: str, model: str) -> str:
    if name == "azure":
        return f"/openai/deployments/{model}/chat/completions"
    return f"{preset_path(name)}/chat/completions"


def backend_for(fake: OpenAIFake, name: str, api_key: str | None) -> OpenAIChatBackend:
    return OpenAIChatBackend(
        BackendConfig(name=name, type=name, base_url=fake.url + preset_path(name), api_key=api_key)
    )


def check_auth(headers: dict[str, str], name: str, api_key: str | None) -> None:
    if api_key is None:
        assert "authorization" not in headers and "api-key" not in headers
    elif name == "azure":
        assert headers["api-key"] == api_key and "authorization" not in headers
    else:
        assert headers["authorization"] == f"Bearer {api_key}" and "api-key" not in headers


@pytest.mark.parametrize("name", COMPATIBLE)
@pytest.mark.parametrize("streamed", [False, True], ids=["generate", "stream"])
async def test_preset_reaches_its_path_with_its_auth(fake: OpenAIFake, name: str, streamed: bool) -> None:
    backend = backend_for(fake, name, "k")
    model = "test-model"
    fake.reply("pong", usage={"prompt_tokens": 3, "completion_tokens": 1})
    request = Request(model, [Message.user("ping")])
    try:
        if streamed:
            events = [event async for event in backend.stream(request)]
            response = events[-1].response
            assert response is not None
        else:
            response = await backend.generate(request)
    finally:
        await backend.aclose()
    assert response.text == "pong"
    assert response.provider == name
    assert response.usage == Usage(input_tokens=3, output_tokens=1)
    sent = fake.last
    assert sent.path == expected_path(name, model)
    assert sent.json["model"] == model and sent.json["messages"] == [{"role": "user", "content": "ping"}]
    assert sent.json.get("stream", False) is streamed
    check_auth(sent.headers, name, "k")
    if name == "azure":
        assert sent.query == {"api-version": "2024-10-21"}


@pytest.mark.parametrize("name", sorted(LOCAL))
async def test_local_presets_send_no_auth_without_a_key(fake: OpenAIFake, name: str) -> None:
    backend = backend_for(fake, name, None)
    try:
        response = await backend.generate(Request("llama3.2", [Message.user("hi")]))
    finally:
        await backend.aclose()
    assert response.text == "hi"
    check_auth(fake.last.headers, name, None)


@pytest.mark.parametrize("name", COMPATIBLE)
async def test_tool_calls_through_every_preset(fake: OpenAIFake, name: str) -> None:
    backend = backend_for(fake, name, "k")
    call_id = "Ab3dE6gH9" if name == "mistral" else "call_1"
    fake.reply(tool_calls=[{"id": call_id, "name": "lookup", "arguments": {"q": "x"}}])
    fake.reply(tool_calls=[{"id": call_id, "name": "lookup", "arguments": {"q": "x"}}])
    request = Request("m", [Message.user("find x")])
    try:
        complete = await backend.generate(request)
        events = [event async for event in backend.stream(request)]
    finally:
        await backend.aclose()
    streamed = events[-1].response
    assert streamed is not None
    expected = [ToolCallPart(call_id, "lookup", {"q": "x"})]
    assert complete.parts == streamed.parts == expected
    assert complete.finish_reason == streamed.finish_reason == "tool_calls"
    assert not any(isinstance(p, TextPart) for p in complete.parts)
