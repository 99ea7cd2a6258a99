"""The OpenAI chat-completions backend, serving the whole OpenAI-compatible family.

One :class:`OpenAIChatBackend` talks to OpenAI, Azure OpenAI, Groq, xAI, DeepSeek, Mistral,
Together, Perplexity, OpenRouter, Fireworks, Cerebras, Hugging Face, Inference.net and local servers
(Ollama, LM Studio, vLLM, SGLang, any compatible URL), and their ``POST /embeddings`` where the preset
serves embeddings (:mod:`~agentadapter.llm.backends.embedding_wire` maps those bodies). What differs
between them is data in :mod:`~agentadapter.llm.backends.presets` (auth style, whether streams may
ask for usage, reasoning model settings, Mistral's tool-call ids); this module reads the preset once
and owns the URL and the HTTP exchange (auth headers, the set-up check and the reasoning-model rule are shared with the
Responses API backend in :mod:`~agentadapter.llm.backends.openai_common`), while
:mod:`~agentadapter.llm.backends.openai_chat_mapping` maps bodies both ways and
:class:`ChatStreamDecoder` reads a stream's chunks. Every part kind is
sent or refused with an error, with one documented exception: reasoning parts are not replayed over
chat completions (DeepSeek rejects ``reasoning_content`` in input). Retries, structured-output
parsing and cost are the facade's; errors are translated at this edge into
:mod:`agentadapter.llm.errors` classes, never leaked as aiohttp/httpx exceptions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from agentadapter.llm import catalog
from agentadapter.llm.backends.base import Backend, BackendConfig, StreamDecoder, elapsed_ms
from agentadapter.llm.backends.embedding_wire import openai_batch, openai_body
from agentadapter.llm.backends.openai_chat_mapping import (
    ChunkMapper,
    WireSettings,
    request_body,
    response_from_body,
)
from agentadapter.llm.backends.openai_common import auth_headers, chat_preset, is_reasoning_model, setup_problem
from agentadapter.llm.embeddings import EmbeddingBatch, EmbeddingLimits, EmbeddingRequest
from agentadapter.llm.errors import (
    APIError,
    CapabilityError,
    InvalidResponseError,
    StreamInterruptedError,
    error_from_event,
)
from agentadapter.llm.messages import Request, Response, StreamAccumulator, StreamEvent
from agentadapter.llm.transport import HTTPRequest, Transport

__all__ = ["AZURE_DEFAULT_API_VERSION", "ChatStreamDecoder", "OpenAIChatBackend"]

AZURE_DEFAULT_API_VERSION = "2024-10-21"
"""The newest GA data-plane version of Azure OpenAI's chat-completions API we test against."""

# `/models` keys that servers use for the context window and the output limit.
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length")
_OUTPUT_KEYS = ("max_completion_tokens", "max_output_tokens")


class OpenAIChatBackend(Backend):
    """Chat completions (``POST {base_url}/chat/completions``) for every OpenAI-compatible server."""

    type_name = "openai_chat"

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config, transport=transport)
        preset = self.preset = chat_preset(config.type)
        self._azure = preset.name == "azure"
        base_url = (config.base_url or preset.base_url or "").rstrip("/")
        self._base_url = base_url
        self._headers = auth_headers(preset, config.api_key)
        self.setup_problem = setup_problem(preset, config, base_url)
        if base_url.endswith("/chat/completions"):  # a full endpoint URL given as the base
            self._url = base_url
            self._base_url = base_url[: -len("/chat/completions")]
        else:
            self._url = f"{base_url}/chat/completions"
        self._azure_v1 = self._azure and self._base_url.endswith("/openai/v1")
        self._api_version = config.api_version or AZURE_DEFAULT_API_VERSION
        self._store = bool(config.options.get("store"))
        self._settings: dict[str, WireSettings] = {}

    # ------------------------------------------------------------------------------ set-up

    def _wire_settings(self, model: str) -> WireSettings:
        settings = self._settings.get(model)
        if settings is None:
            preset = self.preset
            settings = WireSettings(
                reasoning_model=preset.reasoning_model_settings and is_reasoning_model(self, model),
                mistral_tool_ids=preset.tool_call_id_style == "mistral",
                stream_usage=preset.stream_usage_option,
                openai_extras=preset.name == "openai",
                store=self._store,
            )
            if len(self._settings) < 1024:  # bounded: model names come from callers
                self._settings[model] = settings
        return settings

    def _endpoint(self, model: str, path: str = "chat/completions") -> str:
        self.check_setup(model)
        if not self._azure or self._azure_v1:
            return self._url if path == "chat/completions" else f"{self._base_url}/{path}"
        base = self._base_url
        if "/openai/deployments/" not in base:
            deployment = self.config.options.get("deployment") or model
            base = f"{base}/openai/deployments/{quote(str(deployment), safe='')}"
        return f"{base}/{path}?api-version={self._api_version}"

    def _http(self, request: Request, *, stream: bool) -> HTTPRequest:
        url = self._endpoint(request.model)  # first: a set-up problem outranks a request problem
        body = request_body(request, self._wire_settings(request.model), stream=stream)
        return self.http_request("POST", url, request, body=body, headers=self._headers)

    # ------------------------------------------------------------------------------ the contract

    async def generate(self, request: Request) -> Response:
        started = time.perf_counter()
        http_request = self._http(request, stream=False)
        body, _ = await self.send_json(http_request)
        if not isinstance(body, Mapping):
            raise InvalidResponseError(
                f"{self.name} answered HTTP 200 with JSON that is not a chat completion (model "
                f"{request.model}): {str(body)[:200]}; check the base URL",
                provider=self.name, model=request.model, status=200, body=body,
            )
        if "error" in body and not body.get("choices"):
            raise self._error_in_body(body, request.model)
        response = response_from_body(body, self.name, request.model)
        response.latency_ms = elapsed_ms(started)
        return response

    def _error_in_body(self, body: Mapping[str, Any], model: str) -> APIError:
        # Proxies (OpenRouter, LiteLLM) answer HTTP 200 with an error body when the upstream failed.
        error = error_from_event(body, provider=self.name, model=model)
        if type(error) is not StreamInterruptedError:
            return error
        return APIError(
            f"{self.name} answered HTTP 200 with an error instead of a completion (model {model}): "
            f"{str(body.get('error'))[:300]}; the call may be retried",
            provider=self.name, model=model, status=200, body=body, retryable=True,
        )

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        http_request = self._http(request, stream=True)
        decoder = ChatStreamDecoder(self.name, request.model)
        async with contextlib.aclosing(self.stream_with(decoder, http_request, started=started)) as events:
            async for event in events:
                yield event

    # ------------------------------------------------------------------------------ embeddings

    def embedding_limits(self, model: str) -> EmbeddingLimits:
        return self.preset.embeddings or EmbeddingLimits()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingBatch:
        """``POST {base_url}/embeddings`` (Azure: the deployment's), vectors as base64 where the preset asks."""
        if self.preset.embeddings is None:
            raise CapabilityError(
                f"{self.preset.label or self.preset.name} ({self.name}) serves no embeddings endpoint; embed with "
                "a provider that does (openai, azure, mistral, together, fireworks, openrouter, ollama, vllm, ...)"
            )
        url = self._endpoint(request.model, "embeddings")
        body = openai_body(request, base64=self.preset.embedding_base64)
        http_request = self.http_request("POST", url, request, body=body, headers=self._headers)
        answer, _ = await self.send_json(http_request)
        if isinstance(answer, Mapping) and "error" in answer and "data" not in answer:
            raise self._error_in_body(answer, request.model)
        return openai_batch(answer, request, self.name)

    # ------------------------------------------------------------------------------ discovery

    def _models_url(self) -> str:
        self.check_setup()
        if self._azure and not self._azure_v1:
            base = self._base_url.split("/openai/deployments/", 1)[0]
            return f"{base}/openai/models?api-version={self._api_version}"
        return f"{self._base_url}/models"

    async def _model_entries(self) -> list[Mapping[str, Any]]:
        http_request = self.http_request("GET", self._models_url(), None, headers=self._headers)
        body, _ = await self.send_json(http_request)
        data = body.get("data") if isinstance(body, Mapping) else body
        if not isinstance(data, list):
            raise InvalidResponseError(
                f"{self.name} answered GET /models with an unexpected shape: {str(body)[:200]}; "
                "is this an OpenAI-compatible server?",
                provider=self.name, body=body,
            )
        return [entry for entry in data if isinstance(entry, Mapping)]

    async def list_models(self) -> list[str]:
        """The model ids the server offers (``GET {base_url}/models``)."""
        return [str(entry["id"]) for entry in await self._model_entries() if "id" in entry]

    async def detect_capabilities(self, model: str) -> catalog.Capabilities:
        """The catalog's capabilities, with the context window the server reports when it does."""
        known = self.capabilities(model)
        try:
            entries = await self._model_entries()
        except APIError:
            return known  # detection is best effort; the catalog answer still stands
        entry = next((e for e in entries if e.get("id") == model), None)
        if entry is None:
            return known
        updates: dict[str, Any] = {}
        context = _first_int(entry, _CONTEXT_KEYS)
        if context is not None:
            updates["context_window"] = context
        top_provider = entry.get("top_provider")  # OpenRouter
        output = _first_int(entry, _OUTPUT_KEYS)
        if output is None and isinstance(top_provider, Mapping):
            output = _first_int(top_provider, _OUTPUT_KEYS)
        if output is not None:
            updates["max_output_tokens"] = output
        return dataclasses.replace(known, **updates) if updates else known


def _first_int(entry: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class ChatStreamDecoder(StreamDecoder):
    """Chat-completions chunks (parsed JSON) → neutral :class:`StreamEvent` s, through :class:`ChunkMapper`.

    A chunk must be an object; one that carries ``error`` (a proxy's upstream failure) raises it.
    The stream is complete when the model sent a finish reason or the server sent ``[DONE]``.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.mapper = ChunkMapper(StreamAccumulator(provider, model))
        self.done = False

    def feed(self, data: Any) -> list[StreamEvent]:
        if not isinstance(data, Mapping):
            raise StreamInterruptedError(
                f"{self.provider} sent a stream chunk that is not a JSON object (model {self.model}): "
                f"{str(data)[:200]!r}",
                provider=self.provider, model=self.model,
            )
        if "error" in data:
            raise error_from_event(data, provider=self.provider, model=self.model)
        return self.mapper.feed(data)

    def done_marker(self) -> None:
        self.done = True

    def close(self) -> list[StreamEvent]:
        if not self.done and self.mapper.finish_reason is None:
            raise StreamInterruptedError(
                f"{self.provider}'s stream ended before the model finished (no finish reason, no [DONE]; "
                f"model {self.model}); the answer is incomplete, the call may be retried",
                provider=self.provider, model=self.model,
            )
        return self.mapper.end()
