"""Tenants' provider keys: store, rotate and delete them (audited), and load them for the tenant's calls.

Each change is audited in its own transaction (the entry names the provider, the key's name and
hint, never the key) and drops the tenant's cached ``LLM`` facade, so the next call of this server
uses the new key (other server instances within ``AGENTADAPTER_AUTH_CACHE_S``). :func:`keys_loader`
is what ``TenantLLMs.keys`` calls to build a tenant's facade. Reads go straight to the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.server.errors import APIError
from agentadapter.server.provider_key_schemas import ProviderKeyCreate, ProviderKeyRotate
from agentadapter.server.services.common import Caller, invalid, record
from agentadapter.server.state import AppState
from agentadapter.server.tenancy import KeysLoader
from agentadapter.store import provider_keys as store
from agentadapter.store.database import Database
from agentadapter.store.models import ProviderKey
from agentadapter.store.secrets import SecretBox

__all__ = ["create_key", "delete_key", "keys_loader", "rotate_key", "secret_box"]


@lru_cache(maxsize=4)
def secret_box(secret_key: str) -> SecretBox:
    """The box for the setting's value (built once per value)."""
    return SecretBox.from_setting(secret_key)


def _invalid(error: store.InvalidProviderKey) -> APIError:
    details = {"providers": store.keyed_providers()} if error.param == "provider" else None
    return invalid(error.param, str(error), code=f"invalid_{error.param}", details=details)


def _details(row: ProviderKey) -> dict[str, str]:
    return {"provider": row.provider, "name": row.name, "hint": "..." + row.hint}


async def create_key(session: AsyncSession, state: AppState, caller: Caller, data: ProviderKeyCreate) -> ProviderKey:
    try:
        row = await store.create_provider_key(session, caller.tenant_id, secret_box(state.settings.secret_key),
                                              provider=data.provider, key=data.key, name=data.name,
                                              created_by=caller.user_id)
    except store.InvalidProviderKey as error:
        raise _invalid(error) from None
    await record(session, caller, "provider_key.create", "provider_key", row.id, _details(row))
    await session.commit()
    state.tenant_llms.invalidate(caller.tenant_id)
    return row


async def rotate_key(session: AsyncSession, state: AppState, caller: Caller, key_id: uuid.UUID,
                     data: ProviderKeyRotate) -> ProviderKey:
    try:
        row = await store.rotate_provider_key(session, caller.tenant_id, key_id,
                                              secret_box(state.settings.secret_key), data.key)
    except store.InvalidProviderKey as error:
        raise _invalid(error) from None
    await record(session, caller, "provider_key.rotate", "provider_key", row.id, _details(row))
    await session.commit()
    state.tenant_llms.invalidate(caller.tenant_id)
    return row


async def delete_key(session: AsyncSession, state: AppState, caller: Caller, key_id: uuid.UUID) -> None:
    row = await store.delete_provider_key(session, caller.tenant_id, key_id)
    await record(session, caller, "provider_key.delete", "provider_key", key_id, _details(row))
    await session.commit()
    state.tenant_llms.invalidate(caller.tenant_id)


def keys_loader(db: Database, secret_key: str) -> KeysLoader:
    """The loader of a tenant's stored keys as environment variables, for ``TenantLLMs.keys``.

    The box is built here, so an unusable ``AGENTADAPTER_SECRET_KEY`` stops the server at start.
    """
    box = secret_box(secret_key)

    async def load(tenant_id: uuid.UUID) -> Mapping[str, str]:
        async with db.session() as session:
            return await store.tenant_environ(session, box, tenant_id)

    return load
