"""``/v1/provider-keys``: a tenant's own provider API keys (write-only; responses show a hint).

Storing, rotating and deleting need the admin role; listing needs read access.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from agentadapter.server.deps import (
    PageDep,
    ProviderKeysAdmin,
    ProviderKeysRead,
    RequestId,
    SessionDep,
    StateDep,
    WriteSessionDep,
)
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import (
    ListPublic,
    ProviderKeyCreate,
    ProviderKeyPublic,
    ProviderKeyRotate,
    error_responses,
)
from agentadapter.service import provider_keys as service
from agentadapter.service.common import Caller
from agentadapter.store import provider_keys as store

router = APIRouter(prefix=API_PREFIX + "/provider-keys", tags=["provider keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProviderKeyPublic, responses=error_responses(409))
async def create_provider_key(data: ProviderKeyCreate, principal: ProviderKeysAdmin, session: WriteSessionDep,
                              state: StateDep, request_id: RequestId, response: Response) -> ProviderKeyPublic:
    """Store a provider key for this tenant's calls (encrypted; it is never shown again)."""
    box = service.secret_box(state.settings.secret_key)
    row = await service.create_key(session, box, Caller(principal, request_id), provider=data.provider, key=data.key,
                                   name=data.name, facades=state.tenant_llms)
    response.headers["Location"] = f"/v1/provider-keys/{row.id}"
    return ProviderKeyPublic.of(row)


@router.get("", response_model=ListPublic[ProviderKeyPublic])
async def list_provider_keys(
    principal: ProviderKeysRead, session: SessionDep, page: PageDep,
    provider: Annotated[str | None, Query(max_length=64, description="Only this provider's keys.")] = None,
) -> ListPublic[ProviderKeyPublic]:
    """The tenant's provider keys, newest first (hints only)."""
    found = await store.list_provider_keys(session, principal.tenant_id, limit=page.limit, cursor=page.cursor,
                                           provider=provider)
    return ListPublic[ProviderKeyPublic](data=[ProviderKeyPublic.of(r) for r in found.items],
                                         has_more=found.has_more, next_cursor=found.next_cursor)


@router.get("/{key_id}", response_model=ProviderKeyPublic)
async def get_provider_key(key_id: uuid.UUID, principal: ProviderKeysRead, session: SessionDep) -> ProviderKeyPublic:
    return ProviderKeyPublic.of(await store.get_provider_key(session, principal.tenant_id, key_id))


@router.post("/{key_id}/rotate", response_model=ProviderKeyPublic)
async def rotate_provider_key(key_id: uuid.UUID, data: ProviderKeyRotate, principal: ProviderKeysAdmin,
                              session: WriteSessionDep, state: StateDep, request_id: RequestId) -> ProviderKeyPublic:
    """Replace the stored key with the provider's new one."""
    box = service.secret_box(state.settings.secret_key)
    row = await service.rotate_key(session, box, Caller(principal, request_id), key_id, data.key,
                                   facades=state.tenant_llms)
    return ProviderKeyPublic.of(row)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider_key(key_id: uuid.UUID, principal: ProviderKeysAdmin, session: WriteSessionDep,
                              state: StateDep, request_id: RequestId) -> Response:
    """Delete the key; the tenant's calls fall back to the server's own key for that provider."""
    await service.delete_key(session, Caller(principal, request_id), key_id, facades=state.tenant_llms)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
