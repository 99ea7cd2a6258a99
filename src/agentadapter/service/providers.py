"""What the adapter can reach: provider presets, model capabilities, and the health of targets used.

All of it comes from the library (the presets table, the catalog, ``LLM.health()``); nothing here
calls a provider. ``key_set`` says whether the calling tenant has stored a key for the provider or
the server's environment holds one - never the key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from agentadapter.llm import catalog
from agentadapter.llm.backends.presets import PRESETS, Preset, canonical_type
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import AgentAdapterError
from agentadapter.service.errors import InvalidInput, NotFound
from agentadapter.service.trust import check_model

__all__ = ["ProviderInfo", "capabilities", "get_provider", "health", "list_providers", "provider_models"]


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """A provider preset as a tenant sees it: never a key, only whether one is set."""

    name: str
    label: str
    wire_format: str
    base_url: str | None
    key_env: str | None
    key_set: bool
    key_required: bool
    local: bool


def _public(preset: Preset, stored: Collection[str] = ()) -> ProviderInfo:
    return ProviderInfo(
        name=preset.name, label=preset.label, wire_format=preset.backend,
        base_url=next((os.environ[n] for n in preset.base_url_env if os.environ.get(n)), preset.base_url),
        key_env=preset.api_key_env[0] if preset.api_key_env else None,
        key_set=preset.name in stored or any(os.environ.get(n) for n in preset.api_key_env),
        key_required=preset.key_required, local=preset.local,
    )


def list_providers(stored: Collection[str] = ()) -> list[ProviderInfo]:
    """``stored``: the presets the calling tenant has a key for."""
    return [_public(p, stored) for p in PRESETS.values()]


def get_provider(name: str, stored: Collection[str] = ()) -> ProviderInfo:
    preset = PRESETS.get(canonical_type(name))
    if preset is None:
        raise NotFound(f"unknown provider {name!r}; GET /v1/providers lists them", code="provider_not_found")
    return _public(preset, stored)


def _caps(model_id: str, caps: catalog.Capabilities) -> dict[str, Any]:
    data = dataclasses.asdict(caps)
    data["id"] = model_id
    data["object"] = "model.capabilities"
    return data


def provider_models(name: str) -> list[dict[str, Any]]:
    preset = get_provider(name)
    return [_caps(model_id, caps) for model_id, caps in sorted(catalog.known_models().items())
            if model_id.split("/", 1)[0] == preset.name]


def capabilities(llm: LLM, model: str) -> dict[str, Any]:
    """The catalog's entry (``known: false`` and conservative defaults for a model it does not list)."""
    check_model(llm, model)
    try:
        model_id = llm.resolver.model_ids(model)[0]
    except AgentAdapterError as exc:
        raise InvalidInput(str(exc), code="invalid_model", param="model") from exc
    return _caps(model_id, llm.catalog.lookup(model_id))


def health(llm: LLM) -> dict[str, Any]:
    report = llm.health()
    return {"object": "list", "data": [{"object": "target.health", **item.to_dict()} for item in report.values()]}
