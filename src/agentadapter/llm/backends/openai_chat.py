"""The OpenAI chat-completions backend, serving the whole OpenAI-compatible family.

One :class:`OpenAIChatBackend` talks to OpenAI, Azure OpenAI, Groq, xAI, DeepSeek, Mistral,
Together, Perplexity, OpenRouter, Fireworks, Cerebras, Hugging Face, Inference.net and local servers
(Ollama, LM Studio, vLLM, SGLang, any compatible URL). What differs between them is data in
:mod:`~agentadapter.llm.backends.presets` (auth style, whether streams may ask for usage, reasoning
model settings, Mistral's tool-call ids); this module reads the preset once and owns the URL, the
auth headers and the HTTP exchange, while
:mod:`~agentadapter.llm.backends.openai_chat_mapping` maps bodies both ways. Every part kind is
sent or refused with an error, with one documented exception: reasoning parts are not replayed over
chat completions (DeepSeek rejects ``reasoning_content`` in input). Retries, structured-output
parsing and cost are the facade's; errors are translated at this edge into
:mod:`agentadapter.llm.errors` classes, never leaked as aiohttp/httpx exceptions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, cast
from urllib.parse import quote

from agentadapter.llm import catalog
from agentadapter.llm.backends import presets
from agentadapter.llm.backends.base import Backend, BackendConfig, elapsed_ms
from agentadapter.llm.backends.openai_chat_mapping import (
    ChunkMapper,
    WireSettings,
    request_body,
    response_from_body,
)
from agentadapter.llm.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    StreamInterruptedError,
    decode_body,
    error_from_event,
)
from agentadapter.llm.messages import Request, Response, StreamAccumulator, StreamEvent
from agentadapter.llm.transport import HTTPRequest, SSEEvent, Transport

__all__ = ["AZURE_DEFAULT_API_VERSION", "OpenAIChatBackend"]

AZURE_DEFAULT_API_VERSION = "2024-10-21"
"""The newest GA data-plane version of Azure OpenAI's chat-completions API we test against."""

# Model-name prefixes of OpenAI's reasoning models, for deployments the catalog does not know.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

# `/models` keys that servers use for the context window and the output limit.
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length")
_OUTPUT_KEYS = ("max_completion_tokens", "max_output_tokens")


def _preset_for(config_type: str) -> presets.Preset:
    """The preset of a backend type; unknown or non-chat types behave like ``custom``."""
    try:
        preset = presets.get_preset(config_type)
    except ConfigurationError:
        return presets.PRESETS["custom"]
    return preset if preset.backend == "openai_chat" else presets.PRESETS["custom"]


class OpenAIChatBackend(Backend):
    """Chat completions (``POST {base_url}/chat/completions``) for every OpenAI-compatible server."""

    type_name = "openai_chat"

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config, transport=transport)
        preset = self.preset = _preset_for(config.type)
        self._azure = preset.name == "azure"
        base_url = (config.base_url or preset.base_url or "").rstrip("/")
        self._base_url = base_url
        self._headers = self._auth_headers(preset, config)
        # Problems of the set-up are reported when a call is made, with the model in the message.
        self._setup_error = self._check_setup(preset, config, base_url)
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

    @staticmethod
    def _auth_headers(preset: presets.Preset, config: BackendConfig) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if config.api_key:
            if preset.auth == "api-key":
                headers["api-key"] = config.api_key
            elif preset.auth != "none":
                headers["authorization"] = f"Bearer {config.api_key}"
        return headers

    @staticmethod
    def _check_setup(preset: presets.Preset, config: BackendConfig, base_url: str) -> str | None:
        if not base_url:
            env = " or ".join(preset.base_url_env) or "a base URL"
            if preset.name == "custom":
                return (
                    f"backend {config.name!r} has no base_url; set base_url under backends: in "
                    "agentadapter.yaml (e.g. http://localhost:8000/v1) or pass base_url=..."
                )
            return f"{env} is not set; export it or pass base_url=..."
        # A missing key only stops us on the way to the vendor's own host: a preset type pointed at
        # another URL (a proxy, a local server) may well need no key.
        if preset.key_required and not config.api_key and base_url == (preset.base_url or "").rstrip("/"):
            env = " or ".join(preset.api_key_env) or "the API key"
            return f"{env} is not set; export it or pass api_key=..."
        return None

    def _wire_settings(self, model: str) -> WireSettings:
        settings = self._settings.get(model)
        if settings is None:
            preset = self.preset
            reasoning = False
            if preset.reasoning_model_settings:
                forced = self.config.options.get("reasoning_model")
                if forced is not None:
                    reasoning = bool(forced)
                else:
                    reasoning = self.capabilities(model).reasoning or model.startswith(_REASONING_PREFIXES)
            settings = WireSettings(
                reasoning_model=reasoning,
                mistral_tool_ids=preset.tool_call_id_style == "mistral",
                stream_usage=preset.stream_usage_option,
                openai_extras=preset.name == "openai",
                store=self._store,
            )
            if len(self._settings) < 1024:  # bounded: model names come from callers
                self._settings[model] = settings
        return settings

    def _endpoint(self, model: str) -> str:
        if self._setup_error is not None:
            raise ConfigurationError(f"{self._setup_error} (backend {self.name}, model {model})")
        if not self._azure or self._azure_v1:
            return self._url
        base = self._base_url
        if "/openai/deployments/" not in base:
            deployment = self.config.options.get("deployment") or model
            base = f"{base}/openai/deployments/{quote(str(deployment), safe='')}"
        return f"{base}/chat/completions?api-version={self._api_version}"

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
            raise APIError(
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
        acc = StreamAccumulator(self.name, request.model)
        mapper = ChunkMapper(acc)
        done = False
        started_streaming = False
        try:
            # send_sse is an async generator; closing it promptly releases the connection.
            sse = cast(AsyncGenerator[SSEEvent, None], self.send_sse(http_request))
            async with contextlib.aclosing(sse) as events:
                async for event in events:
                    started_streaming = True
                    if done:
                        continue  # drain to the end so the connection goes back to the pool
                    if event.event == "error":
                        raise error_from_event(decode_body(event.data.encode()), provider=self.name,
                                               model=request.model)
                    data = event.data
                    if not data:
                        continue
                    if data == "[DONE]":
                        done = True
                        continue
                    chunk = self.stream_json(event, request.model)
                    if not isinstance(chunk, Mapping):
                        raise StreamInterruptedError(
                            f"{self.name} sent a stream chunk that is not a JSON object (model "
                            f"{request.model}): {data[:200]!r}",
                            provider=self.name, model=request.model,
                        )
                    if "error" in chunk:
                        raise error_from_event(chunk, provider=self.name, model=request.model)
                    for stream_event in mapper.feed(chunk):
                        yield stream_event
        except APIConnectionError as exc:
            if not started_streaming or isinstance(exc, APITimeoutError):
                raise
            raise StreamInterruptedError(
                f"the connection to {self.name} broke in the middle of the stream (model {request.model}): "
                f"{exc.__cause__ or exc}; the answer is incomplete, the call may be retried",
                provider=self.name, model=request.model,
            ) from exc
        if not done and mapper.finish_reason is None:
            raise StreamInterruptedError(
                f"{self.name}'s stream ended before the model finished (no finish reason, no [DONE]; "
                f"model {request.model}); the answer is incomplete, the call may be retried",
                provider=self.name, model=request.model,
            )
        closing = mapper.end()
        finish = closing[-1]
        assert finish.response is not None
        finish.response.latency_ms = elapsed_ms(started)
        for stream_event in closing:
            yield stream_event

    # ------------------------------------------------------------------------------ discovery

    def _models_url(self) -> str:
        if self._setup_error is not None:
            raise ConfigurationError(f"{self._setup_error} (backend {self.name})")
        if self._azure and not self._azure_v1:
            base = self._base_url.split("/openai/deployments/", 1)[0]
            return f"{base}/openai/models?api-version={self._api_version}"
        return f"{self._base_url}/models"

    async def _model_entries(self) -> list[Mapping[str, Any]]:
        http_request = self.http_request("GET", self._models_url(), None, headers=self._headers)
        body, _ = await self.send_json(http_request)
        data = body.get("data") if isinstance(body, Mapping) else body
        if not isinstance(data, list):
            raise APIError(
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
