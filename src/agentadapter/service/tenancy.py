"""One ``LLM`` facade per tenant: the tenant's stored provider keys, its credit guard and its tag.

Every call the service makes on behalf of a tenant (agent runs and the gateway) goes through
``await tenant_llms.get(tenant_id)``. The facade is derived from the server's own ``LLM``
(``LLM.derive``), so it shares connections, breakers, the usage ledger, the cache and the budgets;
what differs per tenant is laid over it:

- ``environ``: the tenant's provider keys (``OPENAI_API_KEY`` and so on), decrypted from the
  database by the ``keys`` loader; a tenant with no stored key for a provider falls back to the
  server's environment (a self-hosted server keeps its keys in its environment);
- ``guards``: what the ``guards`` factory answers for the tenant (its credit balance); a guarded
  tenant's facade also gets ``default_max_tokens`` (``AGENTADAPTER_CREDIT_DEFAULT_MAX_OUTPUT_TOKENS``),
  the output bound its holds assume and its calls without ``max_tokens`` send;
- ``tags``: ``tenant=<id>``, so usage records, budgets and logs know whose call it was;
- ``privacy``: the providers the tenant's compliance policy marks external, whose calls carry
  placeholders instead of personal data (:func:`agentadapter.agents.privacy.pseudonymized`).

Facades are cached for ``ttl_s`` and dropped at once by :meth:`TenantLLMs.invalidate` (a key was
stored, rotated or deleted here); another server instance picks the change up within ``ttl_s``.
:func:`service_facades` is how every process of the service (an API instance, a Celery worker)
makes its ``LLM`` metered and guarded the same way before handing out tenant facades.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentadapter.config import Settings
    from agentadapter.llm.client import LLM
    from agentadapter.llm.policy.budget import SpendGuard
    from agentadapter.llm.shared import SharedState
    from agentadapter.service.config import ServiceSettings
    from agentadapter.store.balances import CreditBalances
    from agentadapter.store.database import Database

__all__ = ["ExternalProviders", "GuardFactory", "KeysLoader", "PrivacyLoader", "TenantLLMs", "privacy_loader",
           "service_facades"]

KeysLoader = Callable[[uuid.UUID], Awaitable[Mapping[str, str]]]
"""A tenant's provider keys as environment variables (``{"OPENAI_API_KEY": "sk-..."}``)."""

GuardFactory = Callable[[uuid.UUID], Awaitable[Sequence["SpendGuard"]]]
"""The spend guards of a tenant's calls (its credit balance), beyond the server's budgets."""

PrivacyLoader = Callable[[uuid.UUID], Awaitable["ExternalProviders | None"]]
"""The providers a tenant marks external, with the detectors to mask their calls by (None: none)."""


@dataclass(frozen=True, slots=True)
class ExternalProviders:
    """Providers whose calls get placeholders for personal data, and what finds it."""

    providers: tuple[str, ...]
    detectors: tuple[str, ...]
    region: str | None = None


class TenantLLMs:
    """Hands out (and caches) the facade of each tenant."""

    def __init__(
        self,
        base: LLM,
        *,
        keys: KeysLoader | None = None,
        guards: GuardFactory | None = None,
        ttl_s: float = 30.0,
        max_tenants: int = 1024,
        default_max_tokens: int | None = None,
    ) -> None:
        self.base = base
        self.keys = keys
        self.guards = guards
        self.privacy: PrivacyLoader | None = None
        self.default_max_tokens = default_max_tokens
        """The output bound of a guarded tenant's calls that set no ``max_tokens`` (sent as theirs)."""
        self.ttl_s = ttl_s
        self.max_tenants = max_tenants
        self.balances: CreditBalances | None = None
        """The running credit balances the guards draw on (a grant refreshes them); None: the database's."""
        self._cache: dict[uuid.UUID, tuple[float, LLM]] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

    async def get(self, tenant_id: uuid.UUID) -> LLM:
        """The tenant's facade (built on first use, rebuilt after ``ttl_s`` or an invalidation)."""
        cached = self._cache.get(tenant_id)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:  # one build per tenant at a time; the others wait for it
            cached = self._cache.get(tenant_id)
            if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
                return cached[1]
            llm = await self._build(tenant_id)
            if len(self._cache) >= self.max_tenants:
                oldest = min(self._cache, key=lambda t: self._cache[t][0])
                self._cache.pop(oldest, None)
            self._cache[tenant_id] = (time.monotonic(), llm)
            return llm

    async def _build(self, tenant_id: uuid.UUID) -> LLM:
        environ = dict(await self.keys(tenant_id)) if self.keys is not None else None
        guards = list(await self.guards(tenant_id)) if self.guards is not None else []
        llm = self.base.derive(environ=environ or None, guards=guards, tags={"tenant": str(tenant_id)},
                               default_max_tokens=self.default_max_tokens if guards else None)
        external = await self.privacy(tenant_id) if self.privacy is not None else None
        if external is not None and external.providers:
            from agentadapter.agents.privacy import pseudonymized

            llm = pseudonymized(llm, external.providers, detectors=external.detectors, region=external.region)
        return llm

    def invalidate(self, tenant_id: uuid.UUID | None = None) -> None:
        """Forget one tenant's facade (or every one), so the next call builds it anew."""
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)


async def service_facades(
    llm: LLM, db: Database, *, settings: Settings, service: ServiceSettings, shared: SharedState | None,
) -> TenantLLMs:
    """Meter and guard ``llm`` as the service does, and hand out its tenant facades.

    Usage goes to the database; spend is counted in the database, or on Redis (``shared``, started
    here) when several instances run; each tenant's facade carries its stored keys and credit guard.
    The API server and every worker process call this, so a run is metered alike wherever it executes.
    """
    # Imported here: these modules import this one.
    from agentadapter.llm.ledger import UsageLedger
    from agentadapter.service.provider_keys import keys_loader
    from agentadapter.store.balances import RunningBalances
    from agentadapter.store.budgets import DatabaseBudgetStore
    from agentadapter.store.credits import guard_factory
    from agentadapter.store.recorder import RunEventSink
    from agentadapter.store.usage import JournaledUsageStore
    from agentadapter.store.writer import RecordWriter

    # Usage records and credit charges are journaled and written by a thread of their own (flush_ledger
    # stops it at shutdown); journals a dead process left are replayed before this returns.
    writer = RecordWriter(db.url, service.ledger_dir or settings.data_dir / "ledger", fsync=service.ledger_fsync,
                          fsync_interval_s=service.ledger_fsync_interval_s, queue_max=service.ledger_queue)
    balances: CreditBalances | None = None
    if shared is not None:
        # Several processes meter the same tenants: their balances live on Redis.
        from agentadapter.store.redis_balances import RedisBalances

        balances = RedisBalances(db, writer, shared.client, prefix=shared.prefix,
                                 reconcile_s=service.credit_reconcile_s, lease_holds=service.credit_lease_holds)
    elif settings.executor == "inline":
        # This is the only process metering tenants: their balances can be kept here.
        balances = RunningBalances(writer, reconcile_s=service.credit_reconcile_s)
    usage = JournaledUsageStore(db, writer)  # every sink registered before the start replays journals
    writer.register("run_event", RunEventSink())
    await writer.start()
    if shared is not None:
        balances.start()  # type: ignore[union-attr]  # the RedisBalances above
    llm.ledger = UsageLedger(usage)  # before any tenant facade shares it
    if shared is not None:
        llm.budgets.store = shared.budgets
        await shared.start()
    else:
        llm.budgets.store = DatabaseBudgetStore(db)
    facades = TenantLLMs(llm, ttl_s=service.auth_cache_s,
                         default_max_tokens=service.credit_default_max_output_tokens)
    facades.keys = keys_loader(db, settings.secret_key)
    facades.guards = guard_factory(db, required=service.credits_required,
                                   unpriced_hold_usd=service.credit_unpriced_hold_usd or None, balances=balances)
    facades.balances = balances
    facades.privacy = privacy_loader(db)
    return facades


def privacy_loader(db: Database) -> PrivacyLoader:
    """Reads a tenant's external providers from its compliance policy."""

    async def load(tenant_id: uuid.UUID) -> ExternalProviders | None:
        from agentadapter.store.compliance import get_policy

        async with db.session() as session:
            policy = await get_policy(session, tenant_id)
        if policy is None or not policy.external_providers:
            return None
        return ExternalProviders(tuple(policy.external_providers), tuple(policy.detectors), policy.phone_region)

    return load
