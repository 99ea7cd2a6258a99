"""Compliance records: a tenant's policy (cached for the storage hook), consents, erasure requests.

:func:`storage_anonymizer` is the storage hook's half that lives here: the run recorder's writes
(:mod:`agentadapter.store.runs`) ask it for the tenant's :class:`~agentadapter.compliance.Anonymizer`
before writing run inputs and outputs, agent steps, messages and events. Policies are read once per
``POLICY_TTL_S`` per process (a run writes many records); :func:`forget_policy` drops this process's
copy at once when the policy changes here, and other processes see the change within the TTL.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.compliance import BUILTIN_KINDS, Anonymizer, PiiMode, PiiPolicy
from agentadapter.store.compliance_models import CompliancePolicy, ErasureRequest, UserConsent
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import utcnow

__all__ = [
    "POLICY_TTL_S",
    "consents_of",
    "create_erasure",
    "due_erasures",
    "ensure_policy",
    "forget_policy",
    "get_erasure",
    "get_policy",
    "list_erasures",
    "pii_policy",
    "set_consents",
    "storage_anonymizer",
]

POLICY_TTL_S = 30.0
MAX_CACHED_POLICIES = 10_000
_cache: dict[uuid.UUID, tuple[float, PiiPolicy, bytes]] = {}


async def get_policy(session: AsyncSession, tenant_id: uuid.UUID) -> CompliancePolicy | None:
    row: CompliancePolicy | None = await session.get(CompliancePolicy, tenant_id)
    return row


async def ensure_policy(session: AsyncSession, tenant_id: uuid.UUID) -> CompliancePolicy:
    """The tenant's policy row, created with the defaults (keep, every built-in detector) when absent."""
    row = await get_policy(session, tenant_id)
    if row is None:
        row = CompliancePolicy(
            tenant_id=tenant_id,
            pii_mode="keep",
            detectors=list(BUILTIN_KINDS),
            hash_key=secrets.token_hex(32),
            external_providers=[],
            required_consents=[],
        )
        session.add(row)
        await session.flush()
    return row


def forget_policy(tenant_id: uuid.UUID | None = None) -> None:
    """Drop this process's cached policy of a tenant (or of all)."""
    if tenant_id is None:
        _cache.clear()
    else:
        _cache.pop(tenant_id, None)


def pii_policy(row: CompliancePolicy | None) -> PiiPolicy:
    if row is None:
        return PiiPolicy()
    mode = cast("PiiMode", row.pii_mode if row.pii_mode in ("keep", "mask", "hash") else "keep")
    return PiiPolicy(mode, tuple(row.detectors or ()), row.phone_region)


async def storage_anonymizer(session: AsyncSession, tenant_id: uuid.UUID) -> Anonymizer | None:
    """The anonymizer of what is stored for the tenant; None when its policy keeps everything."""
    cached = _cache.get(tenant_id)
    if cached is None or time.monotonic() - cached[0] >= POLICY_TTL_S:
        row = (
            await session.execute(
                sa.select(
                    CompliancePolicy.pii_mode,
                    CompliancePolicy.detectors,
                    CompliancePolicy.phone_region,
                    CompliancePolicy.hash_key,
                ).where(CompliancePolicy.tenant_id == tenant_id)
            )
        ).first()
        if row is None:
            policy, key = PiiPolicy(), b""
        else:
            mode = cast("PiiMode", row[0] if row[0] in ("keep", "mask", "hash") else "keep")
            policy, key = PiiPolicy(mode, tuple(row[1] or ()), row[2]), bytes.fromhex(row[3])
        cached = (time.monotonic(), policy, key)
        if len(_cache) >= MAX_CACHED_POLICIES:  # bounded: a server of many tenants reads the rare ones again
            _cache.clear()
        _cache[tenant_id] = cached
    _, policy, key = cached
    return Anonymizer(policy, key) if policy.active else None


# ------------------------------------------------------------------------------------------- consents


async def consents_of(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, UserConsent]:
    rows = await session.scalars(
        sa.select(UserConsent).where(UserConsent.tenant_id == tenant_id, UserConsent.user_id == user_id)
    )
    return {row.purpose: row for row in rows}


async def set_consents(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, answers: Mapping[str, bool], *, source: str = "api"
) -> dict[str, UserConsent]:
    """Record the user's answer for each purpose (an upsert per purpose); returns every consent of the user."""
    current = await consents_of(session, tenant_id, user_id)
    for purpose, granted in answers.items():
        row = current.get(purpose)
        if row is None:
            row = UserConsent(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                user_id=user_id,
                purpose=purpose,
                granted=bool(granted),
                source=source,
            )
            session.add(row)
            current[purpose] = row
        else:
            row.granted = bool(granted)
            row.source = source
            row.updated_at = utcnow()
    await session.flush()
    return current


# ------------------------------------------------------------------------------------------- erasures


async def create_erasure(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    scope: str,
    user_id: uuid.UUID | None,
    execute_after: datetime,
    requested_by: str | None,
    reason: str = "",
) -> ErasureRequest:
    row = ErasureRequest(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        scope=scope,
        user_id=user_id,
        status="pending",
        requested_by=requested_by,
        reason=reason,
        execute_after=execute_after,
        report={},
    )
    session.add(row)
    await session.flush()
    return row


async def get_erasure(session: AsyncSession, tenant_id: uuid.UUID, erasure_id: uuid.UUID) -> ErasureRequest:
    row: ErasureRequest | None = await session.scalar(
        sa.select(ErasureRequest).where(ErasureRequest.tenant_id == tenant_id, ErasureRequest.id == erasure_id)
    )
    if row is None:
        raise RecordNotFound("erasure", erasure_id)
    return row


async def list_erasures(
    session: AsyncSession, tenant_id: uuid.UUID, statuses: Iterable[str] | None = None
) -> Sequence[ErasureRequest]:
    statement = sa.select(ErasureRequest).where(ErasureRequest.tenant_id == tenant_id)
    if statuses is not None:
        statement = statement.where(ErasureRequest.status.in_(list(statuses)))
    return (await session.scalars(statement.order_by(ErasureRequest.created_at.desc()))).all()


async def due_erasures(session: AsyncSession, now: datetime, limit: int = 50) -> Sequence[tuple[uuid.UUID, Any]]:
    """(erasure, tenant) of pending erasures whose window has passed, across tenants (for the housekeeping)."""
    rows = await session.execute(
        sa.select(ErasureRequest.id, ErasureRequest.tenant_id)
        .where(ErasureRequest.status == "pending", ErasureRequest.execute_after <= now)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]
