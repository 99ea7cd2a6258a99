"""Capability detection against loopback servers speaking vLLM's, OpenRouter's, LM Studio's and
Ollama's model-listing APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from agentadapter.llm import catalog
from agentadapter.llm.catalog import Pricing
from agentadapter.llm.detect import (
    detect_capabilities,
    detect_lmstudio,
    detect_ollama,
    detect_openai_compatible,
    server_root,
)
from agentadapter.llm.errors import APIConnectionError, APIError, AuthenticationError, ServerError
from agentadapter.llm.transport import AiohttpTransport, Transport
from fakes.server import FakeServer, Recorded

VLLM_MODELS = {"object": "list", "data": [{
    "id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model", "created": 1, "owned_by": "vllm",
    "root": "meta-llama/Llama-3.1-8B-Instruct", "parent": None, "max_model_len": 32768, "permission": [],
}]}

OPENROUTER_MODELS = {"data": [
    {
        "id": "anthropic/claude-sonnet-4.5", "name": "Anthropic: Claude Sonnet 4.5", "context_length": 1000000,
        "architecture": {"input_modalities": ["text", "image", "file"], "output_modalities": ["text"]},
        "pricing": {"prompt": "0.000003", "completion": "0.000015", "request": "0", "image": "0",
                    "input_cache_read": "0.0000003", "input_cache_write": "0.00000375"},
        "top_provider": {"context_length": 1000000, "max_completion_tokens": 64000, "is_moderated": False},
        "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice", "reasoning",
                                 "include_reasoning", "structured_outputs", "response_format"],
    },
    {
        "id": "some/text-only", "context_length": 8000,
        "architecture": {"modality": "text->text"},
        "pricing": {"prompt": "-1", "completion": "-1"},
        "supported_parameters": ["max_tokens"],
    },
]}

LMSTUDIO_V1 = {"models": [{
    "type": "llm", "publisher": "google", "key": "google/gemma-3-4b", "display_name": "Gemma 3 4B",
    "max_context_length": 131072, "format": "mlx",
    "capabilities": {"vision": True, "trained_for_tool_use": False},
    "loaded_instances": [{"id": "google/gemma-3-4b", "config": {"context_length": 4096}}],
}]}

LMSTUDIO_V0 = {"object": "list", "data": [{
    "id": "qwen2.5-7b-instruct", "object": "model", "type": "llm", "arch": "qwen2",
    "state": "not-loaded", "max_context_length": 32768, "capabilities": ["tool_use"],
}]}

OLLAMA_SHOW = {
    "parameters": "num_ctx 8192\nstop \"<|eot_id|>\"",
    "details": {"family": "llama", "parameter_size": "3.2B"},
    "model_info": {"general.architecture": "llama", "llama.context_length": 131072, "llama.block_count": 28},
    "capabilities": ["completion", "tools"],
}


def _json(body: Any) -> Any:
    async def handler(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.json_response(body)
    return handler


async def _ollama_show(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    model = (recorded.json or {}).get("model")
    if model == "llama3.2":
        return web.json_response(OLLAMA_SHOW)
    if model == "llava":
        return web.json_response({"model_info": {"general.architecture": "llama", "llama.context_length": 4096},
                                  "capabilities": ["completion", "vision"]})
    return web.json_response({"error": f"model '{model}' not found"}, status=404)


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with FakeServer() as fake:
        yield fake


@pytest.fixture
async def transport() -> AsyncIterator[Transport[Any]]:
    made = AiohttpTransport()
    yield made
    await made.aclose()


# ------------------------------------------------------------------------------- OpenAI-compatible


async def test_vllm_max_model_len(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("GET", "/v1/models", _json(VLLM_MODELS))
    caps = await detect_openai_compatible(transport, server.url + "/v1", "meta-llama/Llama-3.1-8B-Instruct",
                                          api_key="secret")
    assert caps is not None and caps.known
    assert caps.context_window == 32768 and caps.max_output_tokens == 32768
    assert caps.source == f"detected: vLLM GET {server.url}/v1/models"
    assert caps.pricing is None  # a vLLM server may be anyone's; no price is invented
    assert caps.vision is True and caps.tools is True  # not reported: left permissive, the server decides
    assert server.requests[-1].headers["authorization"] == "Bearer secret"


async def test_vllm_merges_with_a_base_entry(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("GET", "/v1/models", _json(VLLM_MODELS))
    base = catalog.Capabilities(vision=False, pricing=Pricing(0.1, 0.2), known=True)
    caps = await detect_openai_compatible(transport, server.url + "/v1/", "meta-llama/Llama-3.1-8B-Instruct",
                                          base=base)
    assert caps is not None and caps.context_window == 32768
    assert caps.vision is False and caps.pricing == Pricing(0.1, 0.2)


async def test_openrouter_context_modalities_parameters_and_prices(server: FakeServer,
                                                                   transport: Transport[Any]) -> None:
    server.route("GET", "/api/v1/models", _json(OPENROUTER_MODELS))
    caps = await detect_openai_compatible(transport, server.url + "/api/v1", "anthropic/claude-sonnet-4.5")
    assert caps is not None
    assert (caps.context_window, caps.max_output_tokens) == (1_000_000, 64000)
    assert caps.vision and caps.tools and caps.json_schema and caps.reasoning and caps.prompt_caching
    assert caps.pricing is not None
    assert (caps.pricing.input, caps.pricing.output) == (3.0, 15.0)
    assert (caps.pricing.cached_input, caps.pricing.cache_write) == (0.3, 3.75)
    assert caps.source is not None and "OpenRouter-style server" in caps.source

    text_only = await detect_openai_compatible(transport, server.url + "/api/v1", "some/text-only")
    assert text_only is not None and text_only.vision is False and text_only.tools is False
    assert text_only.pricing is None  # -1 marks a price that depends on routing


async def test_a_model_the_server_does_not_list(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("GET", "/v1/models", _json(VLLM_MODELS))
    assert await detect_openai_compatible(transport, server.url + "/v1", "other/model") is None


async def test_server_errors_are_translated(server: FakeServer, transport: Transport[Any]) -> None:
    server.fail(401, {"error": {"message": "bad key", "type": "invalid_api_key"}})
    with pytest.raises(AuthenticationError):
        await detect_openai_compatible(transport, server.url + "/v1", "m")
    server.fail(503, {"error": {"message": "down"}})
    with pytest.raises(ServerError):
        await detect_openai_compatible(transport, server.url + "/v1", "m")
    server.route("GET", "/v1/models", _json({"unexpected": True}))
    with pytest.raises(APIError, match="does its base URL end in /v1"):
        await detect_openai_compatible(transport, server.url + "/v1", "m")


async def test_an_unreachable_server(transport: Transport[Any]) -> None:
    with pytest.raises(APIConnectionError):
        await detect_openai_compatible(transport, "http://127.0.0.1:9/v1", "m")


# --------------------------------------------------------------------------------------- LM Studio


async def test_lmstudio_v1_uses_the_loaded_context(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("GET", "/api/v1/models", _json(LMSTUDIO_V1))
    caps = await detect_lmstudio(transport, server.url + "/v1", "google/gemma-3-4b")
    assert caps is not None and caps.known
    assert caps.context_window == 4096  # what the loaded instance accepts, not the 131072 maximum
    assert caps.vision is True and caps.tools is False
    assert caps.pricing == Pricing(0.0, 0.0, source="local server: no per-token price")
    assert caps.source == f"detected: LM Studio GET {server.url}/api/v1/models"


async def test_lmstudio_falls_back_to_v0(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("GET", "/api/v0/models", _json(LMSTUDIO_V0))
    caps = await detect_lmstudio(transport, server.url, "qwen2.5-7b-instruct")
    assert caps is not None and caps.context_window == 32768
    assert caps.tools is True and caps.vision is False
    assert await detect_lmstudio(transport, server.url, "missing") is None


# ------------------------------------------------------------------------------------------ Ollama


async def test_ollama_show(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("POST", "/api/show", _ollama_show)
    caps = await detect_ollama(transport, server.url + "/v1", "llama3.2")
    assert caps is not None and caps.known
    assert caps.context_window == 8192  # num_ctx set below the trained 131072: Ollama truncates there
    assert caps.tools is True and caps.vision is False and caps.reasoning is False
    assert caps.source == f"detected: Ollama POST {server.url}/api/show"
    assert server.requests[-1].json == {"model": "llama3.2"}

    llava = await detect_ollama(transport, server.url, "llava")
    assert llava is not None and llava.context_window == 4096
    assert llava.vision is True and llava.tools is False
    assert await detect_ollama(transport, server.url, "nope") is None


# -------------------------------------------------------------------------------------------- auto


async def test_auto_finds_an_ollama_server(server: FakeServer, transport: Transport[Any]) -> None:
    # Ollama's OpenAI-compatible list says nothing but ids; LM Studio's API is absent (404).
    server.route("GET", "/v1/models", _json({"object": "list", "data": [{"id": "llama3.2", "object": "model"}]}))
    server.route("POST", "/api/show", _ollama_show)
    caps = await detect_capabilities(transport, server.url + "/v1", "llama3.2")
    assert caps is not None and caps.source is not None and "Ollama" in caps.source


async def test_auto_prefers_the_openai_listing(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("GET", "/v1/models", _json(VLLM_MODELS))
    caps = await detect_capabilities(transport, server.url + "/v1", "meta-llama/Llama-3.1-8B-Instruct")
    assert caps is not None and caps.source is not None and "vLLM" in caps.source
    assert len(server.requests) == 1


async def test_auto_returns_none_when_nobody_knows(server: FakeServer, transport: Transport[Any]) -> None:
    assert await detect_capabilities(transport, server.url + "/v1", "ghost") is None


async def test_explicit_kinds(server: FakeServer, transport: Transport[Any]) -> None:
    server.route("GET", "/api/v1/models", _json(LMSTUDIO_V1))
    server.route("POST", "/api/show", _ollama_show)
    server.route("GET", "/v1/models", _json(VLLM_MODELS))
    lmstudio = await detect_capabilities(transport, server.url, "google/gemma-3-4b", kind="lmstudio")
    assert lmstudio is not None and lmstudio.context_window == 4096
    ollama = await detect_capabilities(transport, server.url, "llama3.2", kind="ollama")
    assert ollama is not None and ollama.context_window == 8192
    assert await detect_capabilities(transport, server.url + "/v1", "x", kind="openai") is None


@pytest.mark.parametrize(
    ("url", "root"),
    [("http://h:11434/v1", "http://h:11434"), ("http://h:1234/", "http://h:1234"), ("http://h/api", "http://h")],
)
def test_server_root(url: str, root: str) -> None:
    assert server_root(url) == root
