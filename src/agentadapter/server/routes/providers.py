"""``/v1/providers``: the presets, each model's capabilities and price, and the health of targets used."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from agentadapter.server.deps import ProvidersRead, SessionDep, StateDep
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import ListPublic, ProviderPublic
from agentadapter.service import providers as service
from agentadapter.store.provider_keys import providers_with_keys

router = APIRouter(prefix=API_PREFIX + "/providers", tags=["providers"])


def _public(info: service.ProviderInfo) -> ProviderPublic:
    return ProviderPublic(**dataclasses.asdict(info))


@router.get("", response_model=ListPublic[ProviderPublic])
async def list_providers(principal: ProvidersRead, session: SessionDep) -> ListPublic[ProviderPublic]:
    """Every provider preset: wire format, base URL, key variable and whether a key is set (the tenant's or
    the server's)."""
    stored = await providers_with_keys(session, principal.tenant_id)
    return ListPublic[ProviderPublic](data=[_public(p) for p in service.list_providers(stored)], has_more=False,
                                      next_cursor=None)


@router.get("/health")
async def providers_health(principal: ProvidersRead, state: StateDep) -> dict[str, Any]:
    """Success rate, latency percentiles and breaker state of every target this server has called."""
    return service.health(state.llm)


@router.get("/capabilities/{model:path}")
async def model_capabilities(model: str, principal: ProvidersRead, state: StateDep) -> dict[str, Any]:
    """What a model (``provider/model`` or an alias) can do and costs, from the catalog."""
    return service.capabilities(state.llm, model)


@router.get("/{name}", response_model=ProviderPublic)
async def get_provider(name: str, principal: ProvidersRead, session: SessionDep) -> ProviderPublic:
    return _public(service.get_provider(name, await providers_with_keys(session, principal.tenant_id)))


@router.get("/{name}/models")
async def provider_models(name: str, principal: ProvidersRead) -> dict[str, Any]:
    """The catalog's models of this provider, with capabilities and prices (USD per million tokens)."""
    return {"object": "list", "data": service.provider_models(name), "has_more": False, "next_cursor": None}
