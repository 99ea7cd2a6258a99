"""``/v1/models``: OpenAI's model list, with what the catalog and the config know about each model.

Each item has OpenAI's fields (``id``, ``object: model``, ``created``, ``owned_by``) plus ours:
``capabilities``, ``context_window``, ``max_output_tokens``, ``pricing`` (USD per million tokens) and
``available``: whether this tenant can call the model, i.e. its provider needs no key or the key is
in the tenant's facade environment (its stored keys laid over the server's). The aliases and routes
of ``agentadapter.yaml`` follow the catalog, owned by ``agentadapter``, with their ``targets``.
Nothing here calls a provider.
"""

from __future__ import annotations

from typing import Any

from agentadapter.llm import catalog
from agentadapter.llm.backends.presets import PRESETS, canonical_type
from agentadapter.llm.client import LLM
from agentadapter.server.errors import HTTPProblem
from agentadapter.service.trust import model_refusal

__all__ = ["check_model", "list_models", "model_entry"]

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
        "capabilities": {flag: getattr(caps, flag) for flag in _CAPABILITY_FLAGS},
        "context_window": caps.context_window, "max_output_tokens": caps.max_output_tokens,
        "pricing": _pricing(caps.pricing), "known": caps.known,
        "available": _provider_available(llm, provider),
    }


def _alias_item(llm: LLM, name: str) -> dict[str, Any]:
    spec = llm.file_config.models[name]
    targets = llm.resolver.model_ids(name)
    first = llm.catalog.lookup(targets[0])
    item = _catalog_item(llm, targets[0], first)
    item.update({
        "id": name, "owned_by": "agentadapter", "targets": targets,
        "strategy": spec if isinstance(spec, str) else spec.strategy,
        "available": any(_provider_available(llm, t.split("/", 1)[0]) for t in targets),
    })
    if isinstance(spec, str):
        item["strategy"] = "alias"
    return item


def list_models(llm: LLM) -> dict[str, Any]:
    data = [_catalog_item(llm, model_id, caps) for model_id, caps in sorted(llm.catalog.known_models().items())]
    data.extend(_alias_item(llm, name) for name in sorted(llm.file_config.models))
    return {"object": "list", "data": data}


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
    return _catalog_item(llm, model, llm.catalog.lookup(model))
