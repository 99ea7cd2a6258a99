"""Tenants' provider keys (``OPENAI_API_KEY`` and the like), stored encrypted by a :class:`SecretBox`.

A tenant stores a key per provider preset (``openai``, ``anthropic``, ...; aliases such as
``claude`` are stored under the preset's name), optionally several under different names. Only the
Fernet token and the key's last 4 characters (``hint``) are stored; the plaintext exists only on
its way in and when :func:`tenant_environ` hands a tenant's keys to its ``LLM`` facade as the
provider's environment variables. Every function takes the tenant, except :func:`reencrypt_all`,
which is the operator's rotation of the server's secret key over every tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.llm.backends.presets import PRESETS, canonical_type
from agentadapter.store.errors import RecordConflict, RecordNotFound, StoreError
from agentadapter.store.models import ProviderKey, utcnow
from agentadapter.store.pagination import Page, paginate
from agentadapter.store.secrets import SecretBox

__all__ = [
    "DEFAULT_NAME",
    "HINT_CHARS",
    "MIN_KEY_CHARS",
    "InvalidProviderKey",
    "create_provider_key",
    "delete_provider_key",
    "env_var",
    "find_provider_key",
    "get_provider_key",
    "keyed_providers",
    "list_provider_keys",
    "provider_name",
    "providers_with_keys",
    "reencrypt_all",
    "rotate_provider_key",
    "tenant_environ",
]

DEFAULT_NAME = "default"
HINT_CHARS = 4
MIN_KEY_CHARS = 8
"""Shorter values would be mostly revealed by the hint, and the log redaction does not track them."""


class InvalidProviderKey(StoreError, ValueError):
    """The provider takes no key, or the key is not usable; ``param`` names the field at fault."""

    def __init__(self, message: str, *, param: str) -> None:
        self.param = param
        super().__init__(message)


def keyed_providers() -> list[str]:
    """The presets a tenant can store a key for (those that send one)."""
    return sorted(p.name for p in PRESETS.values() if p.api_key_env and p.auth != "none")


def provider_name(provider: str) -> str:
    """The preset name a key is stored under (``claude`` -> ``anthropic``); other names are refused."""
    name = canonical_type(provider)
    if name not in keyed_providers():
        raise InvalidProviderKey(
            f"{provider!r} is not a provider that takes an API key; use one of: {', '.join(keyed_providers())}",
            param="provider",
        )
    return name


def env_var(provider: str) -> str:
    """The environment variable a stored key of this provider is handed to the adapter as."""
    return PRESETS[canonical_type(provider)].api_key_env[0]


def _checked_key(key: str) -> str:
    key = key.strip()  # a key read from a terminal or file ends with a newline
    if len(key) < MIN_KEY_CHARS:
        raise InvalidProviderKey(
            f"the key is {len(key)} characters; a provider key has at least {MIN_KEY_CHARS} - check that all of it "
            "was pasted", param="key")
    if any(c.isspace() for c in key):
        raise InvalidProviderKey("the key contains whitespace; a provider key is one word - check what was pasted",
                                 param="key")
    return key


def _taken(provider: str, name: str) -> RecordConflict:
    return RecordConflict(
        f"this tenant has a {provider} key named {name!r} already; rotate it (POST /v1/provider-keys/{{id}}/rotate) "
        "or pick another name", param="name")


async def create_provider_key(
    session: AsyncSession, tenant_id: uuid.UUID, box: SecretBox, *, provider: str, key: str,
    name: str = DEFAULT_NAME, created_by: uuid.UUID | None = None,
) -> ProviderKey:
    """Store a key, encrypted; a second key of the same provider and name is a conflict."""
    provider = provider_name(provider)
    key = _checked_key(key)
    if await find_provider_key(session, tenant_id, provider, name) is not None:
        raise _taken(provider, name)
    row = ProviderKey(id=uuid.uuid4(), tenant_id=tenant_id, provider=provider, name=name,
                      ciphertext=box.encrypt(key), hint=key[-HINT_CHARS:], created_by=created_by)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # stored concurrently since the check above
        raise _taken(provider, name) from exc
    return row


async def find_provider_key(
    session: AsyncSession, tenant_id: uuid.UUID, provider: str, name: str = DEFAULT_NAME
) -> ProviderKey | None:
    row: ProviderKey | None = await session.scalar(sa.select(ProviderKey).where(
        ProviderKey.tenant_id == tenant_id, ProviderKey.provider == canonical_type(provider),
        ProviderKey.name == name))
    return row


async def get_provider_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ProviderKey:
    row: ProviderKey | None = await session.scalar(
        sa.select(ProviderKey).where(ProviderKey.tenant_id == tenant_id, ProviderKey.id == key_id))
    if row is None:
        raise RecordNotFound("provider key", key_id)
    return row


async def list_provider_keys(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None,
    provider: str | None = None,
) -> Page[ProviderKey]:
    """The tenant's keys (hints only), newest first."""
    statement = sa.select(ProviderKey).where(ProviderKey.tenant_id == tenant_id)
    if provider:
        statement = statement.where(ProviderKey.provider == canonical_type(provider))
    page: Page[ProviderKey] = await paginate(session, statement, ProviderKey, limit=limit, cursor=cursor)
    return page


async def rotate_provider_key(
    session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID, box: SecretBox, key: str
) -> ProviderKey:
    """Replace the stored value with a new key (the provider's new key, not a re-encryption)."""
    row = await get_provider_key(session, tenant_id, key_id)
    key = _checked_key(key)
    row.ciphertext = box.encrypt(key)
    row.hint = key[-HINT_CHARS:]
    row.rotated_at = utcnow()
    await session.flush()
    return row


async def delete_provider_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ProviderKey:
    """Delete the key; the row is returned (detached) for the audit entry."""
    row = await get_provider_key(session, tenant_id, key_id)
    await session.delete(row)
    await session.flush()
    return row


async def providers_with_keys(session: AsyncSession, tenant_id: uuid.UUID) -> set[str]:
    """The presets the tenant has stored a key for."""
    found = await session.scalars(sa.select(ProviderKey.provider).where(ProviderKey.tenant_id == tenant_id).distinct())
    return set(found.all())


def _chosen(rows: Sequence[ProviderKey]) -> dict[str, ProviderKey]:
    """One key per environment variable: the ``default`` one, else the first stored."""
    chosen: dict[str, ProviderKey] = {}
    for row in sorted(rows, key=lambda r: (r.name != DEFAULT_NAME, r.created_at, r.id)):
        if row.provider in PRESETS and PRESETS[row.provider].api_key_env:
            chosen.setdefault(env_var(row.provider), row)
    return chosen


async def tenant_environ(session: AsyncSession, box: SecretBox, tenant_id: uuid.UUID) -> dict[str, str]:
    """The tenant's keys, decrypted, as the providers' environment variables (``{"OPENAI_API_KEY": ...}``)."""
    rows = (await session.scalars(sa.select(ProviderKey).where(ProviderKey.tenant_id == tenant_id))).all()
    return {variable: box.decrypt(row.ciphertext) for variable, row in _chosen(rows).items()}


async def reencrypt_all(session: AsyncSession, box: SecretBox, *, batch: int = 500) -> int:
    """Encrypt every stored key (of every tenant) anew with the newest secret key; how many were.

    All or nothing: a key no secret opens raises before the caller commits. ``updated_at`` is kept,
    since the key itself did not change.
    """
    done = 0
    last: uuid.UUID | None = None
    while True:
        statement = sa.select(ProviderKey.id, ProviderKey.ciphertext).order_by(ProviderKey.id).limit(batch)
        if last is not None:
            statement = statement.where(ProviderKey.id > last)
        rows = (await session.execute(statement)).all()
        if not rows:
            return done
        for key_id, ciphertext in rows:
            await session.execute(sa.update(ProviderKey).where(ProviderKey.id == key_id).values(
                ciphertext=box.rotate(ciphertext), updated_at=ProviderKey.updated_at))
        done += len(rows)
        last = rows[-1][0]
