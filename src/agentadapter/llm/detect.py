"""Capability detection: ask a running server what a model can do.

The catalog (:mod:`agentadapter.llm.catalog`) knows the hosted models; a self-hosted or aggregated
model is best described by its own server. Each function here takes a
:class:`~agentadapter.llm.transport.Transport` and the server's URL, makes one or two small HTTP
calls, and returns :class:`~agentadapter.llm.catalog.Capabilities` with ``known=True`` and
``source`` naming the server and the call (or None when the server does not list the model):

- :func:`detect_openai_compatible`: ``GET {base_url}/models`` of any OpenAI-compatible server:
  vLLM's ``max_model_len``, OpenRouter's ``context_length``, ``top_provider.max_completion_tokens``,
  input modalities, supported parameters and per-token ``pricing``, SGLang's and others'
  ``context_length`` / ``max_context_length``.
- :func:`detect_lmstudio`: LM Studio's own REST API (``/api/v1/models``, else ``/api/v0/models``),
  which, unlike its OpenAI-compatible ``/v1/models``, reports the context length, vision and tool use.
- :func:`detect_ollama`: ``POST {host}/api/show``: ``model_info["<arch>.context_length"]``, the
  ``num_ctx`` parameter when the model sets one, and ``capabilities`` (``tools``, ``vision``,
  ``thinking``).
- :func:`detect_capabilities`: picks one by ``kind``, or tries them in turn (``auto``).

A flag the server does not report keeps the value of ``base`` (pass the catalog's entry to merge
with it); without a base it is left permissive (tools, vision and JSON schema allowed), so a
detected model is never refused something it may well do: the server has the last word. Local
servers (Ollama, LM Studio) get a zero price. Errors from the server are raised as the usual
:class:`~agentadapter.llm.errors.APIError` subclasses; callers that want best effort catch them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from agentadapter.llm.catalog import Capabilities, Pricing
from agentadapter.llm.errors import APIError, NotFoundError, decode_body, error_from_response
from agentadapter.llm.transport import HTTPRequest, Timeout, Transport

__all__ = [
    "DetectKind",
    "detect_capabilities",
    "detect_lmstudio",
    "detect_ollama",
    "detect_openai_compatible",
    "server_root",
]

DetectKind = Literal["auto", "openai", "lmstudio", "ollama"]

DETECT_TIMEOUT = Timeout(connect=5.0, read=15.0, total=20.0)
"""Detection is a quick question; a server that takes longer is treated like any failed call."""

_PERMISSIVE = Capabilities(json_schema=True, vision=True, known=True)
"""The base for flags a server does not report (see the module docstring)."""

_LOCAL_PRICE = Pricing(0.0, 0.0, source="local server: no per-token price")

# `/models` keys servers use for the context window and the output limit, most specific first.
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length")
_OUTPUT_KEYS = ("max_completion_tokens", "max_output_tokens")


# ------------------------------------------------------------------------------- OpenAI-compatible


async def detect_openai_compatible(
    transport: Transport[Any],
    base_url: str,
    model: str,
    *,
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base: Capabilities | None = None,
    timeout: Timeout = DETECT_TIMEOUT,
) -> Capabilities | None:
    """What ``GET {base_url}/models`` says about ``model`` (``base_url`` as the SDK takes it: ``.../v1``).

    None when the server does not list the model or says nothing about it beyond its id (LM Studio's
    OpenAI-compatible list, for one: use :func:`detect_lmstudio`).
    """
    body = await _send(transport, "GET", f"{base_url.rstrip('/')}/models", model, headers, api_key, timeout)
    data = body.get("data") if isinstance(body, Mapping) else body
    if not isinstance(data, list):
        raise APIError(
            f"GET {base_url.rstrip('/')}/models answered with an unexpected shape ({str(body)[:200]}); "
            "is this an OpenAI-compatible server, and does its base URL end in /v1?",
            model=model, body=body,
        )
    entry = next((item for item in data if isinstance(item, Mapping) and item.get("id") == model), None)
    if entry is None:
        return None
    updates: dict[str, Any] = {}
    context = _first_int(entry, _CONTEXT_KEYS)
    top_provider = entry.get("top_provider")
    if context is None and isinstance(top_provider, Mapping):
        context = _first_int(top_provider, ("context_length",))
    if context is not None:
        updates["context_window"] = context
    output = _first_int(entry, _OUTPUT_KEYS)
    if output is None and isinstance(top_provider, Mapping):
        output = _first_int(top_provider, _OUTPUT_KEYS)
    if output is not None:
        updates["max_output_tokens"] = output
    elif context is not None:
        updates["max_output_tokens"] = context  # no separate limit reported: the window bounds the answer
    modalities = _input_modalities(entry)
    if modalities is not None:
        updates["vision"] = "image" in modalities
    parameters = entry.get("supported_parameters")
    if isinstance(parameters, list):  # OpenRouter: what the model accepts
        updates["tools"] = "tools" in parameters
        updates["parallel_tools"] = "tools" in parameters
        updates["json_schema"] = "structured_outputs" in parameters or "response_format" in parameters
        updates["reasoning"] = "reasoning" in parameters or "include_reasoning" in parameters
    pricing = _per_token_pricing(entry.get("pricing"), base_url)
    if pricing is not None:
        updates["pricing"] = pricing
        updates["prompt_caching"] = pricing.cached_input is not None
    if not updates:
        return None
    server = _server_name(entry, base_url)
    return _detected(base, updates, f"detected: {server} GET {base_url.rstrip('/')}/models")


def _server_name(entry: Mapping[str, Any], base_url: str) -> str:
    if "max_model_len" in entry or entry.get("owned_by") == "vllm":
        return "vLLM"
    if "openrouter.ai" in base_url:
        return "OpenRouter"
    if "top_provider" in entry or "pricing" in entry:
        return "OpenRouter-style server"
    return "OpenAI-compatible server"


def _input_modalities(entry: Mapping[str, Any]) -> list[str] | None:
    architecture = entry.get("architecture")
    if isinstance(architecture, Mapping):
        modalities = architecture.get("input_modalities")
        if isinstance(modalities, list):
            return [str(m) for m in modalities]
        modality = architecture.get("modality")  # older OpenRouter shape: "text+image->text"
        if isinstance(modality, str):
            return modality.split("->", 1)[0].split("+")
    return None


def _per_token_pricing(raw: Any, base_url: str) -> Pricing | None:
    """OpenRouter's prices are USD per token as strings ("0.000003"); ours are per million."""
    if not isinstance(raw, Mapping):
        return None

    def per_million(key: str) -> float | None:
        value = raw.get(key)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            return None
        try:
            number = float(value)
        except ValueError:
            return None
        return None if number < 0 else round(number * 1_000_000, 10)  # -1 marks a dynamic price

    price_in, price_out = per_million("prompt"), per_million("completion")
    if price_in is None or price_out is None:
        return None
    return Pricing(
        price_in, price_out,
        cached_input=per_million("input_cache_read"),
        cache_write=per_million("input_cache_write"),
        source=f"{base_url.rstrip('/')}/models",
    )


# --------------------------------------------------------------------------------------- LM Studio


async def detect_lmstudio(
    transport: Transport[Any],
    host: str,
    model: str,
    *,
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base: Capabilities | None = None,
    timeout: Timeout = DETECT_TIMEOUT,
) -> Capabilities | None:
    """What LM Studio's REST API says about ``model`` (``host`` with or without the ``/v1`` suffix).

    Tries ``/api/v1/models`` (LM Studio 0.4+; ``capabilities.vision`` / ``trained_for_tool_use``,
    the loaded instance's ``context_length``), then ``/api/v0/models`` (``type`` ``vlm``,
    ``capabilities: ["tool_use"]``). A loaded instance's context length wins over the model's
    maximum: it is what the server will actually accept.
    """
    root = server_root(host)
    try:
        body = await _send(transport, "GET", f"{root}/api/v1/models", model, headers, api_key, timeout)
        entries = body.get("models") if isinstance(body, Mapping) else None
        source = f"detected: LM Studio GET {root}/api/v1/models"
    except NotFoundError:
        body = await _send(transport, "GET", f"{root}/api/v0/models", model, headers, api_key, timeout)
        entries = body.get("data") if isinstance(body, Mapping) else None
        source = f"detected: LM Studio GET {root}/api/v0/models"
    if not isinstance(entries, list):
        return None
    entry = next(
        (e for e in entries if isinstance(e, Mapping) and model in (e.get("key"), e.get("id"))), None
    )
    if entry is None:
        return None
    updates: dict[str, Any] = {"pricing": _LOCAL_PRICE}
    context = _first_int(entry, ("max_context_length",))
    loaded = _loaded_context_length(entry)
    if loaded is not None:
        context = loaded
    if context is not None:
        updates["context_window"] = context
        updates["max_output_tokens"] = context
    capabilities = entry.get("capabilities")
    if isinstance(capabilities, Mapping):  # v1
        if isinstance(capabilities.get("vision"), bool):
            updates["vision"] = capabilities["vision"]
        if isinstance(capabilities.get("trained_for_tool_use"), bool):
            updates["tools"] = capabilities["trained_for_tool_use"]
    elif isinstance(capabilities, list):  # v0
        updates["tools"] = "tool_use" in capabilities
    if entry.get("type") in ("vlm", "llm") and "vision" not in updates:
        updates["vision"] = entry.get("type") == "vlm"
    return _detected(base, updates, source)


def _loaded_context_length(entry: Mapping[str, Any]) -> int | None:
    value = _first_int(entry, ("loaded_context_length",))
    if value is not None:
        return value
    instances = entry.get("loaded_instances")
    if isinstance(instances, list):
        for instance in instances:
            config = instance.get("config") if isinstance(instance, Mapping) else None
            if isinstance(config, Mapping):
                value = _first_int(config, ("context_length",))
                if value is not None:
                    return value
    return None


# ------------------------------------------------------------------------------------------ Ollama


async def detect_ollama(
    transport: Transport[Any],
    host: str,
    model: str,
    *,
    headers: Mapping[str, str] | None = None,
    base: Capabilities | None = None,
    timeout: Timeout = DETECT_TIMEOUT,
) -> Capabilities | None:
    """What ``POST {host}/api/show`` says about ``model`` (``host`` with or without ``/v1``).

    The context window is the model's trained ``context_length``, or its ``num_ctx`` parameter
    when the model sets a smaller one (Ollama truncates longer prompts silently). A server-wide
    default (``OLLAMA_CONTEXT_LENGTH``) is not visible here; override the entry when you set one.
    None when Ollama does not have the model.
    """
    root = server_root(host)
    try:
        body = await _send(transport, "POST", f"{root}/api/show", model, headers, None, timeout, json={"model": model})
    except NotFoundError:
        return None
    if not isinstance(body, Mapping):
        return None
    updates: dict[str, Any] = {"pricing": _LOCAL_PRICE}
    context = _ollama_context_length(body.get("model_info"))
    num_ctx = _num_ctx(body.get("parameters"))
    if num_ctx is not None and (context is None or num_ctx < context):
        context = num_ctx
    if context is not None:
        updates["context_window"] = context
        updates["max_output_tokens"] = context
    capabilities = body.get("capabilities")
    if isinstance(capabilities, list):
        updates["tools"] = "tools" in capabilities
        updates["parallel_tools"] = "tools" in capabilities
        updates["vision"] = "vision" in capabilities
        updates["reasoning"] = "thinking" in capabilities
    return _detected(base, updates, f"detected: Ollama POST {root}/api/show")


def _ollama_context_length(model_info: Any) -> int | None:
    if not isinstance(model_info, Mapping):
        return None
    architecture = model_info.get("general.architecture")
    if isinstance(architecture, str):
        value = model_info.get(f"{architecture}.context_length")
        if isinstance(value, int) and value > 0:
            return value
    for key, value in model_info.items():
        if str(key).endswith(".context_length") and isinstance(value, int) and value > 0:
            return value
    return None


def _num_ctx(parameters: Any) -> int | None:
    """``num_ctx`` from Ollama's parameters text (``"num_ctx 8192\\nstop ..."``)."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        name, _, value = line.strip().partition(" ")
        if name == "num_ctx":
            try:
                number = int(value.strip())
            except ValueError:
                return None
            return number if number > 0 else None
    return None


# -------------------------------------------------------------------------------------------- auto


async def detect_capabilities(
    transport: Transport[Any],
    base_url: str,
    model: str,
    *,
    kind: DetectKind = "auto",
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base: Capabilities | None = None,
    timeout: Timeout = DETECT_TIMEOUT,
) -> Capabilities | None:
    """Detect with the API ``kind`` names, or with ``auto``: OpenAI-compatible ``/models``, then
    LM Studio's REST API, then Ollama's ``/api/show``, stopping at the first that knows the model.

    With ``auto``, a server that answers one of those calls with 404 (or not at all, for the later
    ones) is simply not that kind of server; the first call's other errors are raised.
    """
    if kind == "openai":
        return await detect_openai_compatible(
            transport, base_url, model, headers=headers, api_key=api_key, base=base, timeout=timeout
        )
    if kind == "lmstudio":
        return await detect_lmstudio(transport, base_url, model, headers=headers, api_key=api_key, base=base,
                                     timeout=timeout)
    if kind == "ollama":
        return await detect_ollama(transport, base_url, model, headers=headers, base=base, timeout=timeout)
    try:
        found = await detect_openai_compatible(
            transport, base_url, model, headers=headers, api_key=api_key, base=base, timeout=timeout
        )
    except NotFoundError:
        found = None
    if found is not None:
        return found
    for native in ("lmstudio", "ollama"):
        try:
            found = await detect_capabilities(
                transport, base_url, model, kind=native, headers=headers, api_key=api_key, base=base,
                timeout=timeout,
            )
        except APIError:
            continue  # not that kind of server
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------------------- plumbing


def server_root(url: str) -> str:
    """The server's root for its native API: ``http://host:11434/v1`` → ``http://host:11434``."""
    root = url.rstrip("/")
    for suffix in ("/v1", "/api"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


async def _send(
    transport: Transport[Any],
    method: str,
    url: str,
    model: str,
    headers: Mapping[str, str] | None,
    api_key: str | None,
    timeout: Timeout,
    *,
    json: Any = None,
) -> Any:
    merged = dict(headers or {})
    if api_key:
        merged.setdefault("Authorization", f"Bearer {api_key}")
    provider = urlsplit(url).netloc or url  # names the server in error messages
    response = await transport.send(
        HTTPRequest(method, url, merged, json=json, timeout=timeout, provider=provider, model=model)
    )
    if response.status >= 400:
        raise error_from_response(
            response.status, decode_body(response.content), response.headers, provider=provider, model=model
        )
    try:
        return response.json()
    except ValueError as exc:
        raise APIError(
            f"{method} {url} answered HTTP {response.status} with a body that is not JSON "
            f"({response.content[:200]!r}); check the server URL",
            provider=provider, model=model, status=response.status, body=response.content[:2000],
        ) from exc


def _first_int(entry: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _detected(base: Capabilities | None, updates: dict[str, Any], source: str) -> Capabilities:
    start = base if base is not None else _PERMISSIVE
    return dataclasses.replace(start, known=True, source=source, **updates)
