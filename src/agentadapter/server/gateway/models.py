"""``/v1/models``: OpenAI's model list, with what the catalog and the config know about each model.

Each item has OpenAI's fields (``id``, ``object: model``, ``created``, ``owned_by``) plus ours:
``capabilities``, ``context_window``, ``max_output_tokens``, ``pricing`` (USD per million tokens) and
``available``: whether this tenant can call the model, i.e. its provider needs no key or the key is
in the tenant's facade environment (its stored keys laid over the server's). Anthropic's fields
(``type``, ``display_name``, ``created_at``, ``max_input_tokens``, ``max_tokens``; the list's
``has_more``, ``first_id``, ``last_id``) are there too, so the ``anthropic`` package lists models here.
The aliases and routes of ``agentadapter.yaml`` follow the catalog, owned by ``agentadapter``, with their ``targets``; a
route's flags hold only where every target has them (its context window is its smallest). Then the
models of the config's named backends (``my-vllm/llama-3``): each backend's own ``model:`` and what its
``list_models`` answers (``GET /models`` of an OpenAI-compatible server), asked at most once per
:data:`LIST_TTL_S` per backend and given :data:`LIST_TIMEOUT_S`; a backend that cannot be reached
lists its configured model only. Their capabilities come from the catalog under the backend's name,
else under its type (a named backend of type ``openai`` serving ``gpt-4o`` has ``openai/gpt-4o``'s).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from agentadapter.llm import catalog
from agentadapter.llm.backends.presets import PRESETS, canonical_type
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.server.errors import HTTPProblem
from agentadapter.service.trust import model_refusal

__all__ = ["LIST_TIMEOUT_S", "LIST_TTL_S", "check_model", "list_models", "model_entry"]

LIST_TTL_S = 300.0
"""How long a named backend's model list is reused (a failure: a tenth of it)."""
LIST_TIMEOUT_S = 3.0
"""How long ``GET /v1/models`` waits for one named backend's list."""
_MAX_LISTED = 1000
_listed: dict[tuple[str, str], tuple[float, list[str]]] = {}

_CAPABILITY_FLAGS = ("tools", "parallel_tools", "vision", "json_schema", "streaming", "reasoning", "prompt_caching")


def _provider_available(llm: LLM, provider: str) -> bool:
    if provider in llm.file_config.backends or provider in llm.resolver.given_backends():
        return True  # a named backend carries its own settings; a given instance is ready
    preset = PRESETS.get(canonical_type(provider))
    if preset is None:
        return False
    environ = llm.resolver.environ
    return not preset.key_required or any(environ.get(name) for name in preset.api_key_env)


def _pricing(pricing: catalog.Pricing | None) -> dict[str, Any] | None:
    if pricing is None:
        return None
    return {"input": pricing.input, "output": pricing.output, "cached_input": pricing.cached_input,
            "cache_write": pricing.cache_write, "unit": "usd_per_million_tokens"}


def _catalog_item(llm: LLM, model_id: str, caps: catalog.Capabilities) -> dict[str, Any]:
    provider = model_id.split("/", 1)[0]
    return {
        "id": model_id, "object": "model", "created": 0, "owned_by": provider,
        # Anthropic's model list fields, for Anthropic-format clients that list models here.
        "type": "model", "display_name": model_id, "created_at": "1970-01-01T00:00:00Z",
        "max_input_tokens": caps.context_window, "max_tokens": caps.max_output_tokens,
        "capabilities": {flag: getattr(caps, flag) for flag in _CAPABILITY_FLAGS},
        "context_window": caps.context_window, "max_output_tokens": caps.max_output_tokens,
        "pricing": _pricing(caps.pricing), "known": caps.known,
        "available": _provider_available(llm, provider),
    }


def _route_capabilities(llm: LLM, targets: list[str]) -> catalog.Capabilities:
    """What a route can do whichever target answers: a flag only where every target has it."""
    caps = [_target_capabilities(llm, target) for target in targets]
    first = caps[0]
    if len(caps) == 1:
        return first
    flags: dict[str, Any] = {flag: all(getattr(c, flag) for c in caps) for flag in _CAPABILITY_FLAGS}
    return dataclasses.replace(first, context_window=min(c.context_window for c in caps),
                               max_output_tokens=min(c.max_output_tokens for c in caps),
                               known=all(c.known for c in caps), **flags)


def _target_capabilities(llm: LLM, model_id: str) -> catalog.Capabilities:
    """The catalog's entry for ``model_id``, else the backend's (a named backend: its type's entry)."""
    found = llm.catalog.find(model_id)
    if found is not None:
        return found
    provider, _, model = model_id.partition("/")
    try:
        return llm.resolver.backend(provider).capabilities(model)
    except AgentAdapterError:
        return llm.catalog.lookup(model_id)


def _alias_item(llm: LLM, name: str) -> dict[str, Any]:
    spec = llm.file_config.models[name]
    targets = llm.resolver.model_ids(name)
    item = _catalog_item(llm, targets[0], _route_capabilities(llm, targets))
    item.update({
        "id": name, "owned_by": "agentadapter", "targets": targets,
        "strategy": spec if isinstance(spec, str) else spec.strategy,
        "available": any(_provider_available(llm, t.split("/", 1)[0]) for t in targets),
    })
    if isinstance(spec, str):
        item["strategy"] = "alias"
    return item


async def _backend_models(llm: LLM, name: str) -> list[str]:
    """A named backend's models: its configured ``model`` and what it lists (cached; [] when unreachable)."""
    spec = llm.file_config.backends[name]
    configured = [spec.model] if spec.model else []
    try:
        backend = llm.resolver.backend(name)
    except AgentAdapterError:
        return configured
    key = (name, str(backend.config.base_url))
    now = time.monotonic()
    cached = _listed.get(key)
    if cached is None or cached[0] < now:
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                listed = [m for m in await backend.list_models() if isinstance(m, str) and m]
            expires = now + LIST_TTL_S
        except (AgentAdapterError, TimeoutError):
            listed, expires = [], now + LIST_TTL_S / 10  # unreachable or cannot list: ask again soon
        if len(_listed) >= _MAX_LISTED:
            _listed.clear()
        _listed[key] = cached = (expires, listed[:_MAX_LISTED])
    return list(dict.fromkeys([*configured, *cached[1]]))


async def list_models(llm: LLM) -> dict[str, Any]:
    data = [_catalog_item(llm, model_id, caps) for model_id, caps in sorted(llm.catalog.known_models().items())]
    data.extend(_alias_item(llm, name) for name in sorted(llm.file_config.models))
    listed = set(llm.catalog.known_models())
    names = sorted(llm.file_config.backends)
    for name, models in zip(names, await asyncio.gather(*(_backend_models(llm, n) for n in names)), strict=True):
        for model in models:
            model_id = f"{name}/{model}"
            if model_id not in listed:
                listed.add(model_id)
                data.append(_catalog_item(llm, model_id, _target_capabilities(llm, model_id)))
    # OpenAI's list shape, with Anthropic's paging fields (one page: everything).
    return {"object": "list", "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def check_model(llm: LLM, model: str) -> None:
    """``model`` must be one a tenant may name (the service's one rule, :func:`model_refusal`): a 404
    ``model_not_found`` for an id no provider or alias here knows, a 403 for a model only the operator
    may use (``local/...``), a 400 for an id that is not one."""
    refusal = model_refusal(llm, model)
    if refusal is None:
        return
    if refusal.reason == "operator_only":
        raise HTTPProblem(403, refusal.message, code="model_not_allowed", param="model")
    if refusal.reason == "invalid":
        raise HTTPProblem(400, refusal.message, code="invalid_model", param="model")
    raise HTTPProblem(404, f"the model {model!r} does not exist here: use provider/model (like openai/gpt-4o-mini) "
                           "of a known provider, or an alias of the server's agentadapter.yaml; GET /v1/models lists "
                           "them", type="invalid_request_error", code="model_not_found", param="model")


def model_entry(llm: LLM, model: str) -> dict[str, Any]:
    """One model's item: an alias or route of the config, else the catalog's entry (defaults when unknown)."""
    if model in llm.file_config.models:
        return _alias_item(llm, model)
    check_model(llm, model)
    return _catalog_item(llm, model, _target_capabilities(llm, model))
