"""Tenants' provider keys: store, rotate and delete them (audited), and load them for the tenant's calls.

Each change is audited in its own transaction (the entry names the provider, the key's name and
hint, never the key) and drops the tenant's cached ``LLM`` facade, so the next call of this server
uses the new key (other server instances within ``AGENTADAPTER_AUTH_CACHE_S``). The API and the CLI
(``agentadapter provider-keys``, audited as the actor ``system``/``cli``) write through the same
functions; the CLI runs in a process of its own and has no facade to drop. :func:`keys_loader`
is what ``TenantLLMs.keys`` calls to build a tenant's facade. Reads go straight to the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.common import Caller, invalid, record
from agentadapter.service.errors import InvalidInput
from agentadapter.service.tenancy import KeysLoader, TenantLLMs
from agentadapter.store import provider_keys as store
from agentadapter.store.database import Database
from agentadapter.store.models import ProviderKey
from agentadapter.store.secrets import SecretBox

__all__ = ["create_key", "delete_key", "delete_named_key", "keys_loader", "rotate_key", "secret_box", "set_key"]


@lru_cache(maxsize=4)
def secret_box(secret_key: str) -> SecretBox:
    """The box for the setting's value (built once per value)."""
    return SecretBox.from_setting(secret_key)


def _invalid(error: store.InvalidProviderKey) -> InvalidInput:
    details = {"providers": store.keyed_providers()} if error.param == "provider" else None
    return invalid(error.param, str(error), code=f"invalid_{error.param}", details=details)


def _details(row: ProviderKey) -> dict[str, str]:
    return {"provider": row.provider, "name": row.name, "hint": "..." + row.hint}


async def _changed(session: AsyncSession, caller: Caller, action: str, row: ProviderKey, key_id: uuid.UUID,
                   facades: TenantLLMs | None) -> None:
    """Audit the change in its transaction, commit, and drop the tenant's cached facade (the next call uses it)."""
    await record(session, caller, f"provider_key.{action}", "provider_key", key_id, _details(row))
    await session.commit()
    if facades is not None:
        facades.invalidate(caller.tenant_id)


async def create_key(session: AsyncSession, box: SecretBox, caller: Caller, *, provider: str, key: str,
                     name: str = "default", facades: TenantLLMs | None = None) -> ProviderKey:
    """Store a new key (a name already used for the provider is a conflict)."""
    try:
        row = await store.create_provider_key(session, caller.tenant_id, box, provider=provider, key=key, name=name,
                                              created_by=caller.user_id)
    except store.InvalidProviderKey as error:
        raise _invalid(error) from None
    await _changed(session, caller, "create", row, row.id, facades)
    return row


async def rotate_key(session: AsyncSession, box: SecretBox, caller: Caller, key_id: uuid.UUID, key: str, *,
                     facades: TenantLLMs | None = None) -> ProviderKey:
    """Replace a stored key with the provider's new one."""
    try:
        row = await store.rotate_provider_key(session, caller.tenant_id, key_id, box, key)
    except store.InvalidProviderKey as error:
        raise _invalid(error) from None
    await _changed(session, caller, "rotate", row, row.id, facades)
    return row


async def set_key(session: AsyncSession, box: SecretBox, caller: Caller, *, provider: str, key: str,
                  name: str = "default", facades: TenantLLMs | None = None) -> tuple[str, ProviderKey]:
    """Store the key under ``name``, or replace the one stored under it: ``("create" | "rotate", row)``."""
    existing = await store.find_provider_key(session, caller.tenant_id, provider, name)
    if existing is None:
        return "create", await create_key(session, box, caller, provider=provider, key=key, name=name,
                                          facades=facades)
    return "rotate", await rotate_key(session, box, caller, existing.id, key, facades=facades)


async def delete_key(session: AsyncSession, caller: Caller, key_id: uuid.UUID, *,
                     facades: TenantLLMs | None = None) -> ProviderKey:
    """Delete a key; the tenant's calls fall back to the server's own key for that provider."""
    row = await store.delete_provider_key(session, caller.tenant_id, key_id)
    await _changed(session, caller, "delete", row, key_id, facades)
    return row


async def delete_named_key(session: AsyncSession, caller: Caller, provider: str, name: str = "default", *,
                           facades: TenantLLMs | None = None) -> ProviderKey | None:
    """Delete the tenant's key of ``provider`` stored under ``name``; None if it has none."""
    row = await store.find_provider_key(session, caller.tenant_id, provider, name)
    if row is None:
        return None
    return await delete_key(session, caller, row.id, facades=facades)


def keys_loader(db: Database, secret_key: str) -> KeysLoader:
    """The loader of a tenant's stored keys as environment variables, for ``TenantLLMs.keys``.

    The box is built here, so an unusable ``AGENTADAPTER_SECRET_KEY`` stops the server at start.
    """
    box = secret_box(secret_key)

    async def load(tenant_id: uuid.UUID) -> Mapping[str, str]:
        async with db.session() as session:
            return await store.tenant_environ(session, box, tenant_id)

    return load
