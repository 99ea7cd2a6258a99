"""Tenant API keys: made here, shown once, kept only as a SHA-256 hash with a visible prefix.

A key reads ``aa_<43 random characters>`` (256 bits from ``secrets``); its first 11 characters are
its visible prefix, stored and listed so a person can tell keys apart. The key itself is never
stored: :func:`find_api_key` hashes what a request presents and looks the hash up (a unique index),
so a database leak leaks no usable key. A plain SHA-256 (no salt, no stretching) is right here
because the key is long and random; a password would need more. Keys carry a role (admin, member,
viewer) and optional scopes, can expire, and are revoked rather than deleted so audit entries keep
their meaning. An expiry is a moment in the future (:func:`expiry_in` turns a lifetime in days into
one, refusing 0, negative and absurd lifetimes): a key that would be born expired, or that a
lifetime of 0 would quietly turn into one that never expires, is refused.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import ROLES, ApiKey, utcnow

__all__ = [
    "KEY_PREFIX",
    "create_api_key",
    "expiry_in",
    "find_api_key",
    "hash_key",
    "list_api_keys",
    "revoke_api_key",
    "touch_api_key",
]

KEY_PREFIX = "aa_"
_VISIBLE = len(KEY_PREFIX) + 8
MAX_LIFETIME_DAYS = 36_500
"""A hundred years: longer is no expiry at all (leave it out), and soon overflows a datetime."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def expiry_in(days: float) -> datetime:
    """The moment a key made now with a lifetime of ``days`` expires; ValueError unless 0 < days <= 100 years."""
    if not (math.isfinite(days) and 0 < days <= MAX_LIFETIME_DAYS):
        raise ValueError(f"a key's lifetime must be more than 0 and at most {MAX_LIFETIME_DAYS} days, not {days}; "
                         "leave the expiry out for a key that does not expire")
    return utcnow() + timedelta(days=days)


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise ValueError(f"a key's expiry must carry its time zone (got the naive {expires_at.isoformat()}); "
                         "use datetime.now(UTC) + timedelta(...)")
    if expires_at <= utcnow():
        raise ValueError(f"a key's expiry must be in the future, not {expires_at.isoformat()}")


async def create_api_key(
    session: AsyncSession, tenant_id: uuid.UUID, *, name: str = "default", role: str = "member",
    scopes: Iterable[str] = (), user_id: uuid.UUID | None = None, expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the tenant: the stored row, and the key itself (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    _check_expiry(expires_at)
    key = _new_key()
    row = ApiKey(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id, name=name, prefix=key[:_VISIBLE],
                 key_hash=hash_key(key), role=role, scopes=sorted(set(scopes)), expires_at=expires_at)
    session.add(row)
    await session.flush()
    return row, key


async def find_api_key(session: AsyncSession, key: str) -> ApiKey | None:
    """The live key (not revoked, not expired) a request presents, found by its hash; None otherwise.

    This is how a request finds its tenant, so it is the one lookup that does not start from one.
    """
    if not key.startswith(KEY_PREFIX):
        return None
    row: ApiKey | None = await session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row


async def list_api_keys(session: AsyncSession, tenant_id: uuid.UUID) -> Sequence[ApiKey]:
    statement = sa.select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
    return (await session.scalars(statement)).all()


async def revoke_api_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    row: ApiKey | None = await session.scalar(
        sa.select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
    )
    if row is None:
        raise RecordNotFound("API key", key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def touch_api_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Note that the key was used just now."""
    await session.execute(
        sa.update(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id).values(last_used_at=utcnow())
    )
