"""Compliance: a tenant's personal-data policy, its users' consents, erasure, and per-tenant retention.

- **Policy** (:func:`update_policy`): what stored run data's personal data becomes (``keep``, ``mask``,
  ``hash``; the store applies it, :mod:`agentadapter.store.compliance`), which detectors, the tenant's
  retention (overriding ``AGENTADAPTER_RETENTION_DAYS``), the providers it marks external (their calls
  get placeholders instead of personal data: :class:`~agentadapter.agents.guardrails` does it) and the
  consents a run needs. Admins change it; every change is audited.
- **Consent** (:func:`check_run_consents`): before a run starts, each consent the policy requires must
  be granted by the user: a recorded answer wins; a purpose with none is asked of the operator's
  consent service (:class:`ConsentHook`: a callable named by ``AGENTADAPTER_CONSENT_HOOK``, or a webhook at
  ``AGENTADAPTER_CONSENT_WEBHOOK_URL``; a tenant never configures it). A missing one is a 403 naming it.
  Gateway calls are checked too (:func:`check_call_consents`), with the answer kept per (tenant, user)
  for the service's ``auth_cache_s``: the gateway's hot path makes no query per call.
- **Erasure** (:func:`request_erasure`, :func:`execute_erasure`): a user's (or the whole tenant's)
  data everywhere it lives - database rows (:mod:`agentadapter.store.erasure`), the gateway's stored
  responses, stored files and their index entries, Redis state under the server's prefixes, this
  process's caches - after a soft-delete
  window (``AGENTADAPTER_ERASURE_GRACE_DAYS``) during which it can be cancelled and the user's API keys
  are already revoked. Each step is audited and the erasure keeps a report of what was removed.
- **Retention** (:func:`purge_by_policy`): the global purge, with each tenant's own period where it set one.

The compliance report is in :mod:`agentadapter.service.compliance_report`.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.compliance import MODES, detector_kinds
from agentadapter.service.common import Caller, invalid, record
from agentadapter.service.errors import Conflict, NotAllowed, Unavailable
from agentadapter.service.responses import erase_user_responses
from agentadapter.store import compliance as store
from agentadapter.store import retention, stored_responses, users
from agentadapter.store.compliance_models import CompliancePolicy, ErasureRequest
from agentadapter.store.erasure import (
    ErasureCounts,
    checkpoint,
    erase_tenant_rows,
    erase_user_rows,
    secure_delete,
)
from agentadapter.store.models import ApiKey, Tenant, User, utcnow

if TYPE_CHECKING:
    from agentadapter.knowledge.storage import BlobStorage
    from agentadapter.store.database import Database

__all__ = [
    "ComplianceSettings",
    "ConsentHook",
    "ConsentQuery",
    "ErasureParts",
    "erasure_parts",
    "PolicyChange",
    "cancel_erasure",
    "check_call_consents",
    "check_run_consents",
    "consent_hook",
    "effective_consents",
    "execute_due_erasures",
    "execute_erasure",
    "forget_consents",
    "policy_view",
    "purge_by_policy",
    "request_erasure",
    "set_consent_hook",
    "set_user_consents",
    "update_policy",
]

logger = logging.getLogger("agentadapter.service.compliance")

_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,63}")
WELL_KNOWN_PURPOSES = ("external_providers", "training", "retention", "analytics")
"""Purposes the docs describe; a tenant may name others (lower-case names)."""


class ComplianceSettings(BaseSettings):
    """The operator's compliance settings (``AGENTADAPTER_*``)."""

    model_config = SettingsConfigDict(env_prefix="AGENTADAPTER_", extra="ignore")

    erasure_grace_days: float = Field(default=7.0, ge=0)
    """The soft-delete window: an erasure is carried out this long after it is asked (0: at once)."""
    consent_hook: str | None = None
    """``module:callable`` of the operator's consent service, called with a :class:`ConsentQuery`."""
    consent_webhook_url: str | None = None
    """A URL POSTed a :class:`ConsentQuery` as JSON; it answers ``{"consents": {"purpose": true|false}}``."""
    consent_webhook_timeout_s: float = Field(default=5.0, gt=0)
    redis_erasure_prefixes: str = "agentadapter:"
    """Comma-separated Redis key prefixes an erasure searches for the erased ids."""
    log_personal_data: Literal["keep", "mask"] = "keep"
    """``mask``: the server's log lines have personal data masked (:mod:`agentadapter.compliance.logs`)."""


# ------------------------------------------------------------------------------------------------ policy


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """The fields of a policy update (None: unchanged)."""

    pii_mode: str | None = None
    detectors: Sequence[str] | None = None
    phone_region: str | None = None
    retention_days: float | None = None
    clear_retention: bool = False
    external_providers: Sequence[str] | None = None
    required_consents: Sequence[str] | None = None


def policy_view(row: CompliancePolicy | None, *, default_retention_days: float) -> dict[str, Any]:
    """The policy as the API shows it (the hash key never)."""
    return {
        "pii_mode": row.pii_mode if row else "keep",
        "detectors": list(row.detectors) if row else sorted(detector_kinds()),
        "available_detectors": detector_kinds(),
        "phone_region": row.phone_region if row else None,
        "retention_days": row.retention_days if row else None,
        "effective_retention_days": (row.retention_days if row and row.retention_days else default_retention_days),
        "external_providers": list(row.external_providers) if row else [],
        "required_consents": list(row.required_consents) if row else [],
        "updated_at": row.updated_at.isoformat() if row else None,
    }


def _names(param: str, values: Sequence[str], what: str) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise invalid(param, f"{value!r} is not a {what} name (lower-case letters, digits, _ and -, up to 64)")
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


async def update_policy(session: AsyncSession, caller: Caller, change: PolicyChange) -> CompliancePolicy:
    """Change the tenant's policy (audited); the store's copy in this process is dropped at once."""
    row = await store.ensure_policy(session, caller.tenant_id)
    before = {
        "pii_mode": row.pii_mode,
        "detectors": list(row.detectors),
        "retention_days": row.retention_days,
        "external_providers": list(row.external_providers),
        "required_consents": list(row.required_consents),
    }
    if change.pii_mode is not None:
        if change.pii_mode not in MODES:
            raise invalid("pii_mode", f"must be one of {', '.join(MODES)}, not {change.pii_mode!r}")
        row.pii_mode = change.pii_mode
    if change.detectors is not None:
        known = detector_kinds()
        unknown = [d for d in change.detectors if d not in known]
        if unknown:
            raise invalid(
                "detectors", f"no detector named {', '.join(map(repr, unknown))}; the detectors are {', '.join(known)}"
            )
        row.detectors = list(dict.fromkeys(change.detectors))
    if change.phone_region is not None:
        region = change.phone_region.upper()
        if not re.fullmatch(r"[A-Z]{2}", region):
            raise invalid("phone_region", f"is a two-letter country code (GB, US, DE), not {change.phone_region!r}")
        row.phone_region = region
    if change.clear_retention:
        row.retention_days = None
    elif change.retention_days is not None:
        if not 0 < change.retention_days <= 36500:
            raise invalid("retention_days", f"must be between 0 (excluded) and 36500 days, not {change.retention_days}")
        row.retention_days = float(change.retention_days)
    if change.external_providers is not None:
        row.external_providers = _names("external_providers", change.external_providers, "provider")
    if change.required_consents is not None:
        row.required_consents = _names("required_consents", change.required_consents, "consent purpose")
    row.updated_at = utcnow()
    after = {
        "pii_mode": row.pii_mode,
        "detectors": list(row.detectors),
        "retention_days": row.retention_days,
        "external_providers": list(row.external_providers),
        "required_consents": list(row.required_consents),
    }
    await record(
        session,
        caller,
        "compliance.policy_update",
        "compliance_policy",
        caller.tenant_id,
        {"before": before, "after": after},
    )
    await session.commit()
    store.forget_policy(caller.tenant_id)
    forget_consents(caller.tenant_id)  # the consents it requires may have changed
    return row


# ----------------------------------------------------------------------------------------------- consent


@dataclass(frozen=True, slots=True)
class ConsentQuery:
    """What the operator's consent service is asked: does this user agree to these purposes?"""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    subject: str
    email: str | None
    purposes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": str(self.tenant_id),
            "user_id": str(self.user_id),
            "subject": self.subject,
            "email": self.email,
            "purposes": list(self.purposes),
        }


ConsentHook = Callable[[ConsentQuery], Awaitable[Mapping[str, bool]] | Mapping[str, bool]]
"""The operator's consent service: the answer for each purpose it knows (the others count as not given)."""

_hook_override: list[ConsentHook | None] = []


def set_consent_hook(hook: ConsentHook | None) -> None:
    """Install the process's consent service (None: back to what the environment configures)."""
    _hook_override[:] = [hook] if hook is not None else []
    consent_hook.cache_clear()


@cache
def consent_hook() -> ConsentHook | None:
    """The operator's consent service: the one installed, else ``AGENTADAPTER_CONSENT_HOOK`` or its webhook."""
    if _hook_override:
        return _hook_override[0]
    settings = ComplianceSettings()
    if settings.consent_hook:
        module, _, name = settings.consent_hook.partition(":")
        if not module or not name:
            raise ValueError(f"AGENTADAPTER_CONSENT_HOOK is module:callable, not {settings.consent_hook!r}")
        hook: ConsentHook = getattr(importlib.import_module(module), name)
        return hook
    if settings.consent_webhook_url:
        return _webhook(settings.consent_webhook_url, settings.consent_webhook_timeout_s)
    return None


def _webhook(url: str, timeout_s: float) -> ConsentHook:
    async def ask(query: ConsentQuery) -> Mapping[str, bool]:
        import httpx

        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(url, json=query.to_dict())
            response.raise_for_status()
            answer = response.json().get("consents", {})
        return {str(k): v is True for k, v in answer.items()} if isinstance(answer, dict) else {}

    return ask


async def effective_consents(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, purposes: Sequence[str]
) -> dict[str, bool]:
    """Each purpose's answer: the user's recorded one, else the consent service's (False without either)."""
    recorded = await store.consents_of(session, tenant_id, user_id)
    answers = {p: recorded[p].granted for p in purposes if p in recorded}
    unknown = tuple(p for p in purposes if p not in answers)
    hook = consent_hook() if unknown else None
    if hook is not None:
        user = await users.get_user(session, tenant_id, user_id)
        query = ConsentQuery(tenant_id, user_id, user.subject, user.email, unknown)
        try:
            result = hook(query)
            given = await result if inspect.isawaitable(result) else result
        except Exception as exc:
            # Fail closed: a consent nobody could confirm is not given, and the caller is told why.
            logger.warning("the consent service failed (%s)", type(exc).__name__, exc_info=True)
            raise Unavailable(
                f"the consent service did not answer ({type(exc).__name__}); retry in a moment",
                code="consent_service_unavailable",
            ) from exc
        answers.update({p: bool(given.get(p, False)) for p in unknown})
    return {p: answers.get(p, False) for p in purposes}


async def check_run_consents(session: AsyncSession, caller: Caller) -> None:
    """Refuse (403 ``consent_required``) a run whose user lacks a consent the tenant's policy requires.

    The operator (no user) and the tenant's default user, whom its API keys without a user act as, are not
    checked: they stand for the tenant, not a person; a user's own key or token acts as them and is."""
    if caller.user_id is None:
        return
    missing = await missing_consents(session, caller.tenant_id, caller.user_id)
    if missing:
        raise _consent_refusal(caller, "run", missing)


async def missing_consents(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> tuple[str, ...]:
    """The consents the tenant's policy requires and the user has not given (none for the default user)."""
    policy = await store.get_policy(session, tenant_id)
    if policy is None or not policy.required_consents:
        return ()
    is_default = await session.scalar(sa.select(User.is_default).where(User.tenant_id == tenant_id, User.id == user_id))
    if is_default:
        return ()
    answers = await effective_consents(session, tenant_id, user_id, policy.required_consents)
    return tuple(p for p, granted in answers.items() if not granted)


def _consent_refusal(caller: Caller, what: str, missing: Sequence[str]) -> NotAllowed:
    return NotAllowed(
        f"this {what} needs the consent{'s' if len(missing) > 1 else ''} {', '.join(missing)} of user "
        f"{caller.principal.subject}, which {'they have' if len(missing) > 1 else 'it has'} not given; record it "
        f"(PUT /v1/compliance/consents/{caller.user_id}) or ask the tenant's admin",
        code="consent_required",
        details={"missing": list(missing), "user_id": str(caller.user_id)},
    )


MAX_CACHED_CONSENTS = 100_000
_ConsentKey = tuple[uuid.UUID, uuid.UUID]
_consent_answers: dict[_ConsentKey, tuple[float, tuple[str, ...]]] = {}
"""(tenant, user) -> (valid until, on the monotonic clock; the consents missing): gateway calls' answers."""
_consent_lookups: dict[_ConsentKey, asyncio.Task[tuple[str, ...]]] = {}
"""The lookup under way for a (tenant, user): a burst of calls waits for the one that started it."""


async def check_call_consents(db: Database, caller: Caller, *, ttl_s: float) -> None:
    """Refuse (403 ``consent_required``) a gateway call whose user lacks a consent the tenant's policy requires.

    As :func:`check_run_consents` (the operator and the tenant's default user are not checked), except that
    the answer is kept per (tenant, user) for ``ttl_s`` (the service's
    ``auth_cache_s``), since a gateway call is a hot path and a run is not: a burst of calls makes one
    lookup, a consent recorded or a policy changed through this process takes effect at once
    (:func:`forget_consents`), and one recorded through another process, or a withdrawal that the
    operator's consent service alone knows of, within ``ttl_s``.
    """
    user_id = caller.user_id
    if user_id is None:
        return  # the operator, acting for no user
    key = (caller.tenant_id, user_id)
    cached = _consent_answers.get(key)
    if cached is not None and cached[0] > time.monotonic():
        missing = cached[1]
    else:
        lookup = _consent_lookups.get(key)
        if lookup is None:
            lookup = asyncio.get_running_loop().create_task(_look_up_consents(db, key, ttl_s))
            _consent_lookups[key] = lookup
        missing = await asyncio.shield(lookup)  # a caller that goes away does not cancel the others' lookup
    if missing:
        raise _consent_refusal(caller, "call", missing)


async def _look_up_consents(db: Database, key: _ConsentKey, ttl_s: float) -> tuple[str, ...]:
    """The consents the user lacks, kept for ``ttl_s`` unless forgotten while it was being looked up."""
    tenant_id, user_id = key
    try:
        async with db.session() as session:
            missing = await missing_consents(session, tenant_id, user_id)
    finally:
        forgotten = _consent_lookups.get(key) is not asyncio.current_task()
        if not forgotten:
            del _consent_lookups[key]
    if not forgotten and ttl_s > 0:
        if len(_consent_answers) >= MAX_CACHED_CONSENTS:  # bounded: rare users are looked up again
            _consent_answers.clear()
        _consent_answers[key] = (time.monotonic() + ttl_s, missing)
    return missing


def forget_consents(tenant_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None) -> None:
    """Drop this process's answers for gateway calls: of a user, of a tenant's users, or every one.

    A lookup under way for them is forgotten too: it may have read what changed, so its answer is not kept
    and the next call looks again.
    """
    for kept in (_consent_answers, _consent_lookups):
        for key in [k for k in kept if tenant_id is None or (k[0] == tenant_id and user_id in (None, k[1]))]:
            del kept[key]


async def set_user_consents(
    session: AsyncSession, caller: Caller, user_id: uuid.UUID, answers: Mapping[str, bool]
) -> dict[str, Any]:
    """Record a user's answers (audited); the caller's route checked who may."""
    await users.get_user(session, caller.tenant_id, user_id)  # another tenant's user: 404
    _names("consents", list(answers), "consent purpose")
    rows = await store.set_consents(session, caller.tenant_id, user_id, answers)
    await record(session, caller, "consent.update", "user", user_id, {"consents": dict(answers)})
    await session.commit()
    forget_consents(caller.tenant_id, user_id)  # the user's next gateway call sees the answer at once
    return {
        purpose: {"granted": row.granted, "source": row.source, "updated_at": row.updated_at.isoformat()}
        for purpose, row in sorted(rows.items())
    }


# ----------------------------------------------------------------------------------------------- erasure


@dataclass(slots=True)
class ErasureParts:
    """Where an erasure reaches beyond the database: the file storage, Redis, this process's caches."""

    db: Database
    storage: BlobStorage | None = None
    redis: Any = None
    """An asyncio Redis client (``redis.asyncio.Redis``), or None without Redis."""
    redis_prefixes: Sequence[str] = ("agentadapter:",)
    forget: list[Callable[[uuid.UUID], None]] = field(default_factory=list)
    """Called with the tenant after an erasure: caches that may hold what was erased (auth, facades)."""


def erasure_parts(
    db: Database, *, storage: BlobStorage | None, redis: Any, forget: Sequence[Callable[[uuid.UUID], None]] = ()
) -> ErasureParts:
    """The parts of a process that has them, with the operator's Redis prefixes."""
    settings = ComplianceSettings()
    prefixes = tuple(p.strip() for p in settings.redis_erasure_prefixes.split(",") if p.strip())
    return ErasureParts(db=db, storage=storage, redis=redis, redis_prefixes=prefixes, forget=list(forget))


async def request_erasure(
    session: AsyncSession,
    caller: Caller,
    *,
    user_id: uuid.UUID | None,
    reason: str = "",
    grace_days: float | None = None,
) -> ErasureRequest:
    """Ask for an erasure of a user (or, ``user_id`` None, of the whole tenant), carried out after the window.

    The user's API keys are revoked now: during the window nobody acts as them, and the erasure can still
    be cancelled (the keys stay revoked then; issue new ones).
    """
    grace = ComplianceSettings().erasure_grace_days if grace_days is None else grace_days
    if grace < 0:
        raise invalid("grace_days", f"must be 0 or more, not {grace}")
    scope = "tenant" if user_id is None else "user"
    if user_id is None:
        pending_tenant = await session.scalar(
            sa.select(ErasureRequest.id).where(
                ErasureRequest.tenant_id == caller.tenant_id,
                ErasureRequest.scope == "tenant",
                ErasureRequest.status == "pending",
            )
        )
        if pending_tenant is not None:
            raise Conflict(
                f"an erasure of the whole tenant is pending already ({pending_tenant})", code="erasure_pending"
            )
    else:
        user = await users.get_user(session, caller.tenant_id, user_id)
        if user.is_default:
            raise Conflict(
                "the tenant's default user is who its API keys act as; its data is the tenant's: erase the "
                "tenant instead (POST /v1/compliance/erasures without user_id)",
                code="default_user",
                param="user_id",
            )
        pending = await session.scalar(
            sa.select(ErasureRequest.id).where(
                ErasureRequest.tenant_id == caller.tenant_id,
                ErasureRequest.user_id == user_id,
                ErasureRequest.status == "pending",
            )
        )
        if pending is not None:
            raise Conflict(
                f"an erasure of user {user_id} is pending already ({pending})", code="erasure_pending", param="user_id"
            )
        now = utcnow()
        await session.execute(
            sa.update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
        )
    row = await store.create_erasure(
        session,
        caller.tenant_id,
        scope=scope,
        user_id=user_id,
        execute_after=utcnow() + timedelta(days=grace),
        requested_by=caller.principal.subject,
        reason=reason[:2000],
    )
    await record(
        session,
        caller,
        "erasure.request",
        "erasure",
        row.id,
        {"scope": scope, "execute_after": row.execute_after.isoformat()},
    )
    await session.commit()
    return row


async def cancel_erasure(session: AsyncSession, caller: Caller, erasure_id: uuid.UUID) -> ErasureRequest:
    row = await store.get_erasure(session, caller.tenant_id, erasure_id)
    if row.status != "pending":
        raise Conflict(
            f"erasure {erasure_id} is {row.status}; only a pending one can be cancelled",
            code="erasure_not_pending",
            param="erasure_id",
        )
    row.status = "cancelled"
    await record(session, caller, "erasure.cancel", "erasure", row.id, {"scope": row.scope})
    await session.commit()
    return row


async def execute_erasure(
    parts: ErasureParts,
    tenant_id: uuid.UUID,
    erasure_id: uuid.UUID,
    *,
    caller: Caller | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Carry out a pending erasure whose window has passed (``force``: now); returns its report."""
    caller = caller or Caller.system(tenant_id, "compliance")
    async with parts.db.writer() as session:
        await secure_delete(session)  # what is deleted is overwritten, not left in free pages
        row = await store.get_erasure(session, tenant_id, erasure_id)
        if row.status != "pending":
            raise Conflict(
                f"erasure {erasure_id} is {row.status}, not pending", code="erasure_not_pending", param="erasure_id"
            )
        if not force and row.execute_after > utcnow():
            raise Conflict(
                f"erasure {erasure_id} is in its soft-delete window until {row.execute_after.isoformat()}; "
                "it can still be cancelled",
                code="erasure_in_window",
                param="erasure_id",
            )
        if row.scope == "tenant":
            counts = await erase_tenant_rows(session, tenant_id)
            identifiers = [str(tenant_id), tenant_id.hex]
            subject_hash = hashlib.sha256(tenant_id.bytes).hexdigest()
        else:
            if row.user_id is None:
                raise Conflict(f"erasure {erasure_id} names no user any more", code="erasure_not_pending")
            policy = await store.ensure_policy(session, tenant_id)
            subject_hash = hashlib.sha256(bytes.fromhex(policy.hash_key) + row.user_id.bytes).hexdigest()
            identifiers = [str(row.user_id), row.user_id.hex]
            # Before the rows' sweep, which would only scrub the user's id from their conversations' data.
            responses_deleted = await stored_responses.delete_user_responses(session, tenant_id, row.user_id)
            counts = await erase_user_rows(session, tenant_id, row.user_id)
            counts.add(counts.deleted, stored_responses.StoredResponse.__tablename__, responses_deleted)
            identifiers += [str(k) for k in counts.api_key_ids] + [k.hex for k in counts.api_key_ids]
        report = counts.to_dict()
        report["redis_keys_removed"] = 0
        report["executed_at"] = utcnow().isoformat()
        if row.scope == "user":
            row.status, row.executed_at, row.subject_hash, row.report = "done", utcnow(), subject_hash, report
            await record(session, caller, "erasure.execute", "erasure", row.id, {"scope": "user", **counts.to_dict()})
        await secure_delete(session, on=False)  # the pooled connection's later deletes need not pay for it
    report["files_removed"] = await _remove_blobs(parts, counts)
    report["redis_keys_removed"] = 0
    if row.scope == "user" and row.user_id is not None and parts.redis is not None:
        # The user's stored responses on Redis are keyed by tenant and response id, not by user: their index
        # lists them (a tenant's erasure finds them by the tenant's id, as every other key).
        report["redis_keys_removed"] += await erase_user_responses(parts.redis, parts.redis_prefixes, tenant_id,
                                                                  row.user_id)
    report["redis_keys_removed"] += await _remove_redis_keys(parts, identifiers)
    if row.scope == "user":
        async with parts.db.writer() as session:
            await session.execute(
                sa.update(ErasureRequest).where(ErasureRequest.id == erasure_id).values(report=report)
            )
    await checkpoint(parts.db)
    for forget in parts.forget:
        forget(tenant_id)
    store.forget_policy(tenant_id)
    forget_consents(tenant_id)
    logger.info(
        "erasure %s (%s) of tenant %s done: %s",
        erasure_id,
        row.scope,
        tenant_id,
        report,
        extra={"event": "compliance.erasure_done"},
    )
    return report


async def _remove_blobs(parts: ErasureParts, counts: ErasureCounts) -> int:
    removed = 0
    if parts.storage is None:
        return 0
    from agentadapter.knowledge.errors import StorageError

    for key in counts.storage_keys:
        try:
            await parts.storage.delete(key)
            removed += 1
        except StorageError:
            logger.warning("an erased file's blob could not be removed; its row is gone", exc_info=True)
    return removed


async def _remove_redis_keys(parts: ErasureParts, identifiers: Sequence[str]) -> int:
    """Delete the Redis keys under the server's prefixes that name one of ``identifiers``."""
    if parts.redis is None:
        return 0
    removed = 0
    for prefix in parts.redis_prefixes:
        for identifier in identifiers:
            batch: list[Any] = []
            async for key in parts.redis.scan_iter(match=f"{_glob(prefix)}*{_glob(identifier)}*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    removed += int(await parts.redis.delete(*batch))
                    batch = []
            if batch:
                removed += int(await parts.redis.delete(*batch))
    return removed


def _glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def execute_due_erasures(parts: ErasureParts, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every pending erasure whose window has passed, across tenants (the housekeeping's round)."""
    async with parts.db.session() as session:
        due = await store.due_erasures(session, now or utcnow())
    reports = []
    for erasure_id, tenant_id in due:
        try:
            reports.append(await execute_erasure(parts, tenant_id, erasure_id))
        except Conflict:
            continue  # another process took it meanwhile
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("erasure %s failed; it is tried again at the next round", erasure_id)
    return reports


# --------------------------------------------------------------------------------------------- retention


async def purge_by_policy(db: Database, *, default_days: float, dry_run: bool = False) -> retention.PurgeReport:
    """The retention purge with each tenant's own period: tenants with one are purged by it, the rest by
    ``default_days`` (0: the server keeps everything, and only tenants with a period of their own are
    purged); the counts are summed."""
    async with db.session() as session:
        overrides = (
            await session.execute(
                sa.select(CompliancePolicy.tenant_id, CompliancePolicy.retention_days)
                .where(CompliancePolicy.retention_days.is_not(None))
                .join(Tenant, Tenant.id == CompliancePolicy.tenant_id)
            )
        ).all()
    if default_days == 0:
        total = retention.PurgeReport(cutoff=utcnow(), dry_run=dry_run)
    else:
        total = await retention.purge(
            db,
            older_than=retention.cutoff_for(default_days),
            dry_run=dry_run,
            exclude_tenants=[row[0] for row in overrides],
        )
    for tenant_id, days in overrides:
        if not days:
            continue
        own = await retention.purge(
            db, older_than=retention.cutoff_for(float(days)), dry_run=dry_run, tenant_id=tenant_id
        )
        for table, count in own.counts.items():
            total.counts[table] += count
    return total
