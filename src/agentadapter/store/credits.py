"""Prepaid credits: a USD balance per tenant that every LLM call of the tenant draws on.

An operator grants credits (:func:`grant`, from ``agentadapter credits add`` or ``POST
/v1/credits/grants`` with the ``credits:admin`` scope); the first grant opens the tenant's
:class:`~agentadapter.store.models.CreditAccount`. Every grant and every charge is a
:class:`~agentadapter.store.models.CreditTransaction`, so the balance can always be explained.

:class:`CreditGuard` is the :class:`~agentadapter.llm.policy.budget.SpendGuard` the tenant's ``LLM``
facade asks before each call, with the call's worst case (:func:`agentadapter.llm.bounds.call_bound`:
the input with images and documents at what the provider bills for them, plus ``max_tokens`` of
output - for a call that sets none, the server's ``AGENTADAPTER_CREDIT_DEFAULT_MAX_OUTPUT_TOKENS``,
which the facade then sends as ``max_tokens``). Reserving is one conditional ``UPDATE``
(``reserved += bound`` where ``balance - reserved >= bound``), atomic in the database, so a burst of
concurrent calls - from one server process or several - cannot hold more than the balance; a call
that does not fit is refused with :class:`~agentadapter.llm.errors.InsufficientCreditsError` before
anything is sent, and so is a call to a model without a known price unless the operator set a flat
amount for those (``AGENTADAPTER_CREDIT_UNPRICED_HOLD_USD``). Settling is one transaction: a
``charge`` row keyed by the reservation's id (a unique column, so a reservation is charged once
however often it is settled) and the balance and reservation update. A call that cost more than its
hold is charged the excess only down to minus its own hold in available balance; the rest is written
off, and both show in the charge's ``details``, a ``credits.overrun`` log event and a metric. So the
balance never ends lower than minus one call's bound.
Tenants without an account are not metered, unless the server requires credits
(``AGENTADAPTER_CREDITS_REQUIRED=true``), in which case their calls are refused;
:func:`guard_factory` hands a tenant's facade its guard, or none (no database round trip per call).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.llm.errors import InsufficientCreditsError, InvalidRequestError
from agentadapter.store.database import Database
from agentadapter.store.errors import StoreError
from agentadapter.store.models import CreditAccount, CreditTransaction, utcnow
from agentadapter.store.pagination import Page, paginate

if TYPE_CHECKING:
    from agentadapter.llm.bounds import CallBound
    from agentadapter.llm.policy.budget import SpendGuard
    from agentadapter.store.balances import CreditBalances

__all__ = [
    "ADD_CREDITS_HINT",
    "CreditGuard",
    "CreditHold",
    "account",
    "check_can_start",
    "grant",
    "guard_factory",
    "transactions",
]

logger = logging.getLogger("agentadapter.store.credits")

ADD_CREDITS_HINT = (
    "an operator adds credits with `agentadapter credits add --tenant NAME AMOUNT` "
    "(or POST /v1/credits/grants with a key that has the credits:admin scope)"
)


# ---------------------------------------------------------------------------------------- accounts


async def account(session: AsyncSession, tenant_id: uuid.UUID) -> CreditAccount | None:
    """The tenant's account, or None when it has never been granted credits (it is not metered)."""
    found: CreditAccount | None = await session.get(CreditAccount, tenant_id, populate_existing=True)
    return found


async def grant(
    session: AsyncSession, tenant_id: uuid.UUID, amount_usd: float, *, actor: str, description: str = "",
    details: Mapping[str, Any] | None = None,
) -> CreditTransaction:
    """Add ``amount_usd`` to the tenant's balance (opening its account on the first grant) and record
    the ``grant`` transaction, in the caller's transaction (the caller commits)."""
    if not math.isfinite(amount_usd) or amount_usd <= 0:
        raise InvalidRequestError(f"a grant must be a positive amount of USD, not {amount_usd!r}")
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    await session.execute(
        insert(CreditAccount)
        .values(tenant_id=tenant_id, balance_usd=0.0, reserved_usd=0.0, charged_usd=0.0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    balance = (await session.execute(
        sa.update(CreditAccount)
        .where(CreditAccount.tenant_id == tenant_id)
        .values(balance_usd=CreditAccount.balance_usd + amount_usd, updated_at=now)
        .returning(CreditAccount.balance_usd)
    )).scalar_one()
    entry = CreditTransaction(
        id=uuid.uuid4(), tenant_id=tenant_id, kind="grant", amount_usd=amount_usd, balance_after_usd=float(balance),
        reservation_id=None, reserved_usd=0.0, description=description, details=dict(details or {}),
        actor=actor[:100],
    )
    session.add(entry)
    await session.flush()
    return entry


async def transactions(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None,
    kind: str | None = None,
) -> Page[CreditTransaction]:
    """The tenant's grants and charges, newest first, one page at a time."""
    statement = sa.select(CreditTransaction).where(CreditTransaction.tenant_id == tenant_id)
    if kind is not None:
        statement = statement.where(CreditTransaction.kind == kind)
    page: Page[CreditTransaction] = await paginate(session, statement, CreditTransaction, limit=limit,
                                                   cursor=cursor)
    return page


async def check_can_start(session: AsyncSession, tenant_id: uuid.UUID, *, required: bool) -> None:
    """Refuse work up front (a run) for a metered tenant with nothing left to spend.

    Raises :class:`InsufficientCreditsError` when the account's available balance is not positive,
    or when the tenant has no account and the server requires credits. Each call the work makes
    is still checked against its own estimate.
    """
    row = (await session.execute(
        sa.select(CreditAccount.balance_usd, CreditAccount.reserved_usd).where(CreditAccount.tenant_id == tenant_id)
    )).first()
    if row is None:
        if required:
            raise _no_account(tenant_id, 0.0)
        return
    if row.balance_usd - row.reserved_usd <= 0:
        raise InsufficientCreditsError(
            f"the tenant's credit balance is ${row.balance_usd:.6f}, "
            f"${row.reserved_usd:.6f} of it held by calls in progress, so nothing is left to start this; "
            f"nothing was started. {ADD_CREDITS_HINT[0].upper()}{ADD_CREDITS_HINT[1:]}",
            balance_usd=float(row.balance_usd), needed_usd=0.0,
        )


def _insufficient(balance: float, reserved: float, estimate: float) -> InsufficientCreditsError:
    return InsufficientCreditsError(
        f"the tenant's credit balance is ${balance:.6f}, ${reserved:.6f} of it held by "
        f"calls in progress (${max(0.0, balance - reserved):.6f} available), and this call may cost up to "
        f"${estimate:.6f}; nothing was sent. Lower max_tokens or use a cheaper model, or add credits: "
        f"{ADD_CREDITS_HINT}",
        balance_usd=balance, needed_usd=estimate,
    )


def _no_account(tenant_id: uuid.UUID, estimate_usd: float) -> InsufficientCreditsError:
    return InsufficientCreditsError(
        f"this server requires prepaid credits (AGENTADAPTER_CREDITS_REQUIRED=true) "
        f"and tenant {tenant_id} has none; nothing was sent. {ADD_CREDITS_HINT[0].upper()}{ADD_CREDITS_HINT[1:]}",
        balance_usd=0.0, needed_usd=estimate_usd,
    )


# ------------------------------------------------------------------------------------------- guard

OVERRUNS = Counter(
    "agentadapter_credit_overruns_total",
    "Calls whose actual cost exceeded the credit hold taken for them (the provider billed beyond the bound).",
)
OVERRUN_USD = Counter(
    "agentadapter_credit_overrun_usd_total",
    "USD that calls cost beyond their credit holds, by whether it was charged to the tenant or written off.",
    ["outcome"],
)


class CreditHold:
    """One call's reservation against the tenant's balance, settled once (see :class:`CreditGuard`)."""

    __slots__ = ("amount_usd", "bound", "flat", "guard", "id", "settled")

    def __init__(self, guard: CreditGuard, reservation_id: uuid.UUID, amount_usd: float, *,
                 bound: CallBound | None = None, flat: bool = False) -> None:
        self.guard = guard
        self.id = reservation_id
        self.amount_usd = amount_usd
        self.bound = bound
        """What the hold covers (tokens and model), recorded beside an overrun."""
        self.flat = flat
        """An unpriced model's call: charged the operator's flat amount, ``amount_usd``."""
        self.settled = False

    async def settle(self, actual_usd: float | None) -> None:
        """Charge the actual cost (None: an unknown price, charged as 0, or the flat amount of an unpriced
        model's hold) and release the hold."""
        if self.settled:
            return
        self.settled = True
        if self.flat and actual_usd is None:
            actual_usd = self.amount_usd
        await self.guard.settle(self.id, self.amount_usd, actual_usd, bound=self.bound)


class _UnmeteredHold:
    """The hold of a tenant whose account is gone and whom the server does not require to have one."""

    __slots__ = ()

    async def settle(self, actual_usd: float | None) -> None:
        return None


class CreditGuard:
    """A tenant's credit balance as a :class:`~agentadapter.llm.policy.budget.BoundedSpendGuard`.

    ``unpriced_hold_usd`` is what a call to a model without a known price holds and is charged
    (``AGENTADAPTER_CREDIT_UNPRICED_HOLD_USD``); None (the default) refuses such calls, since nothing
    bounds what they cost.
    """

    def __init__(self, db: Database, tenant_id: uuid.UUID, required: bool, *,
                 unpriced_hold_usd: float | None = None, balances: CreditBalances | None = None) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.required = required
        self.unpriced_hold_usd = unpriced_hold_usd if unpriced_hold_usd else None
        self.balances = balances
        """The running balances the service keeps (holds in memory, charges journaled); None: every
        hold and settlement is a database transaction on the account row."""

    async def reserve_bound(self, bound: CallBound, tags: Mapping[str, str]) -> CreditHold | _UnmeteredHold:
        """Hold the call's worst case (``bound.usd``), or refuse it with :class:`InsufficientCreditsError`.

        A model without a known price holds ``unpriced_hold_usd``, or is refused when none is set.
        """
        if bound.priced:
            return await self._hold(bound.usd, bound=bound, flat=False)
        if self.unpriced_hold_usd is not None:
            return await self._hold(self.unpriced_hold_usd, bound=bound, flat=True)
        if not self.required and not await self._has_account():
            return _UnmeteredHold()
        raise InsufficientCreditsError(
            f"{bound.model} has no known price, so what this call may cost cannot be held against the tenant's "
            "prepaid credits; nothing was sent. Use a model with a price (GET /v1/models lists them), or ask the "
            "operator to price this one (the catalog: section of the configuration) or to set "
            "AGENTADAPTER_CREDIT_UNPRICED_HOLD_USD, a flat amount such calls hold and are charged",
            balance_usd=0.0, needed_usd=0.0,
        )

    async def reserve(self, estimate_usd: float, tags: Mapping[str, str]) -> CreditHold | _UnmeteredHold:
        """Hold ``estimate_usd`` of the balance, or refuse the call with :class:`InsufficientCreditsError`."""
        return await self._hold(estimate_usd, bound=None, flat=False)

    async def _has_account(self) -> bool:
        if self.balances is not None:
            return await self.balances.has_account(self.tenant_id)
        async with self.db.session() as session:
            return await session.get(CreditAccount, self.tenant_id) is not None

    async def _hold(self, amount_usd: float, *, bound: CallBound | None, flat: bool) -> CreditHold | _UnmeteredHold:
        if self.balances is not None:
            return await self._hold_running(max(0.0, float(amount_usd)), bound=bound, flat=flat)
        # One conditional UPDATE: the database checks what is available (balance - open holds) and takes
        # the hold in the same step, so concurrent calls - from any process - never pass a stale check.
        estimate = max(0.0, float(amount_usd))
        table = CreditAccount
        found: sa.Row[float, float] | None = None
        async with self.db.writer() as session:
            held = (await session.execute(
                sa.update(table)
                .where(table.tenant_id == self.tenant_id, table.balance_usd - table.reserved_usd >= estimate)
                .values(reserved_usd=table.reserved_usd + estimate, updated_at=utcnow())
                .returning(table.tenant_id)
            )).first()
            if held is None:
                found = (await session.execute(
                    sa.select(table.balance_usd, table.reserved_usd).where(table.tenant_id == self.tenant_id)
                )).first()
        if held is not None:
            return CreditHold(self, uuid.uuid4(), estimate, bound=bound, flat=flat)
        if found is None:
            if self.required:
                raise _no_account(self.tenant_id, estimate)
            return _UnmeteredHold()
        raise _insufficient(float(found.balance_usd), float(found.reserved_usd), estimate)

    async def _hold_running(self, estimate: float, *, bound: CallBound | None,
                            flat: bool) -> CreditHold | _UnmeteredHold:
        # The running balance: a check and an addition under a lock, no I/O once the account is loaded.
        assert self.balances is not None
        try:
            refused = await self.balances.hold(self.tenant_id, estimate)
        except LookupError:
            if self.required:
                raise _no_account(self.tenant_id, estimate) from None
            return _UnmeteredHold()
        if refused is not None:
            raise _insufficient(refused[0], refused[1], estimate)
        return CreditHold(self, uuid.uuid4(), estimate, bound=bound, flat=flat)

    async def settle(self, reservation_id: uuid.UUID, held_usd: float, actual_usd: float | None, *,
                     bound: CallBound | None = None) -> None:
        """Charge ``actual_usd`` for the reservation and release ``held_usd``, exactly once per reservation.

        A call that cost more than its hold (the provider billed beyond the bound) is charged the excess
        only as far as the balance not held by other calls, plus this call's own hold, covers it: the
        available balance never falls below minus this hold, so however many calls overrun at once, the
        balance stays above minus one call's bound. What could not be charged is written off. Both
        amounts are recorded in the charge's ``details`` (``overrun_usd``, ``uncollected_usd``), logged
        as ``credits.overrun`` and counted in ``agentadapter_credit_overrun_usd_total``.

        A second settle of the same reservation (a retry, another process) finds its charge already
        recorded - the unique ``reservation_id`` - and changes nothing.
        """
        actual = float(actual_usd) if actual_usd is not None and math.isfinite(actual_usd) else 0.0
        actual = max(0.0, actual)
        overrun = max(0.0, actual - held_usd)
        if self.balances is not None:
            details: dict[str, Any] = {"unpriced": True} if actual_usd is None else {}
            if overrun > 0 and bound is not None:
                details["bound"] = bound.describe()
            settled = await self.balances.settle(self.tenant_id, reservation_id, held_usd, actual, details,
                                           "cost beyond the call's hold" if overrun > 0 else "")
            if settled is None:
                logger.warning("the credit account of tenant %s is gone; a call's $%.6f was not charged",
                               self.tenant_id, actual)
                return
            self._report_overrun(reservation_id, held_usd, actual, overrun, settled.collected_usd, bound)
            return
        table = CreditAccount
        try:
            async with self.db.writer() as session:
                # The first UPDATE locks the account row (PostgreSQL) or takes the write lock (SQLite)
                # until commit, so the balance read here is the one the charge is computed against.
                locked = (await session.execute(
                    sa.update(table).where(table.tenant_id == self.tenant_id).values(updated_at=utcnow())
                    .returning(table.balance_usd, table.reserved_usd)
                )).first()
                if locked is None:
                    logger.warning("the credit account of tenant %s is gone; a call's $%.6f was not charged",
                                   self.tenant_id, actual)
                    return
                available = float(locked.balance_usd) - float(locked.reserved_usd)  # this hold counted
                collected = min(overrun, max(0.0, available + held_usd))
                charge = actual - overrun + collected
                balance = (await session.execute(
                    sa.update(table)
                    .where(table.tenant_id == self.tenant_id)
                    .values(balance_usd=table.balance_usd - charge, charged_usd=table.charged_usd + charge,
                            reserved_usd=sa.case((table.reserved_usd - held_usd > 0, table.reserved_usd - held_usd),
                                                 else_=0.0))
                    .returning(table.balance_usd)
                )).scalar_one()
                details = {}
                if actual_usd is None:
                    details["unpriced"] = True
                if overrun > 0:
                    details.update(overrun_usd=overrun, uncollected_usd=overrun - collected, held_usd=held_usd,
                                   cost_usd=actual)
                    if bound is not None:
                        details["bound"] = bound.describe()
                session.add(CreditTransaction(
                    id=uuid.uuid4(), tenant_id=self.tenant_id, kind="charge", amount_usd=-charge,
                    balance_after_usd=float(balance), reservation_id=reservation_id, reserved_usd=held_usd,
                    description="cost beyond the call's hold" if overrun > 0 else "", details=details, actor=None,
                ))
                await session.flush()
        except IntegrityError as exc:
            # The transaction (the balance update included) was rolled back. Only a charge already
            # recorded for this reservation makes that the expected outcome.
            async with self.db.session() as session:
                recorded = await session.scalar(
                    sa.select(CreditTransaction.id).where(CreditTransaction.reservation_id == reservation_id))
            if recorded is None:
                raise StoreError(
                    f"could not record the charge of reservation {reservation_id} for tenant {self.tenant_id} "
                    f"({exc.orig}); its ${held_usd:.6f} stays reserved until an operator adjusts the account"
                ) from exc
            logger.debug("reservation %s was already settled; not charged again", reservation_id)
            return
        self._report_overrun(reservation_id, held_usd, actual, overrun, collected, bound)

    def _report_overrun(self, reservation_id: uuid.UUID, held_usd: float, actual: float, overrun: float,
                        collected: float, bound: CallBound | None) -> None:
        if overrun > 0:
            OVERRUNS.inc()
            OVERRUN_USD.labels("charged").inc(collected)
            OVERRUN_USD.labels("written_off").inc(overrun - collected)
            logger.warning(
                "a call of tenant %s cost $%.6f, $%.6f over its $%.6f credit hold; $%.6f of that was charged "
                "and $%.6f written off (the balance may not fall below minus one call's hold)",
                self.tenant_id, actual, overrun, held_usd, collected, overrun - collected,
                extra={"event": "credits.overrun", "tenant": str(self.tenant_id), "reservation": str(reservation_id),
                       "cost_usd": actual, "held_usd": held_usd, "overrun_usd": overrun,
                       "uncollected_usd": overrun - collected,
                       "bound": bound.describe() if bound is not None else None},
            )


def guard_factory(
    db: Database, *, required: bool, unpriced_hold_usd: float | None = None, balances: CreditBalances | None = None,
) -> Callable[[uuid.UUID], Awaitable[Sequence[SpendGuard]]]:
    """The ``TenantLLMs.guards`` factory: a tenant's :class:`CreditGuard` when it has an account (or
    when credits are required), no guard otherwise. With ``balances`` the guards draw on those."""

    async def guards(tenant_id: uuid.UUID) -> Sequence[SpendGuard]:
        guard = CreditGuard(db, tenant_id, required, unpriced_hold_usd=unpriced_hold_usd, balances=balances)
        if required:
            return [guard]
        return [guard] if await guard._has_account() else []

    return guards
