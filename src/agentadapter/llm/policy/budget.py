"""Budgets: USD limits per scope and window, checked before a call is sent.

A :class:`Budget` limits spend for a scope — ``global``, ``project:<name>``, ``agent:<name>``,
``key:<name>`` or ``tag:<key>=<value>``, matched against the request's tags — over a window
(``request``, ``day``, ``month`` or ``total``). Before a call, :class:`BudgetGuard` reserves the
call's cost estimate (counted input plus ``max_tokens``) against every budget that applies; if any
would go over its limit the call is refused with
:class:`~agentadapter.llm.errors.BudgetExceededError` and nothing is sent. After the call the
reservation settles to the actual cost. Because concurrent calls reserve before they send, a burst
cannot overspend. A model without a known price (neither the catalog nor the configuration's
``catalog:`` section prices it) has no cost to hold: a call to one is refused with
:class:`~agentadapter.llm.errors.UnpricedModelError` by every budget that applies to it, unless that
budget says ``allow_unpriced`` (then the call counts as $0 against it). Crossing a budget's
``alert_at`` share fires an alert once per window: a log event, the registered callbacks, and an
optional webhook. Spend lives behind :class:`BudgetStore`; :class:`InProcessBudgetStore` keeps it in
this process, the service keeps it in its database (``agentadapter.store.budgets``) and several
instances share it on Redis. The store's methods are coroutines because those stores do I/O; a
reserve is one atomic step in each of them.

:class:`SpendGuard` is what the facade asks before every call (``LLM(guards=[...])``): a
:class:`BudgetGuard` is one, and so is the service's per-tenant credit balance. Each answers a
reservation that settles to the actual cost exactly once. The estimate a guard is asked to hold is
the call's worst case (:func:`agentadapter.llm.bounds.call_bound`); a guard that also needs to know
what that worst case is made of - whether the model is priced at all, the token bounds to record
beside an overrun - implements :class:`BoundedSpendGuard`, and the facade hands it the whole
:class:`~agentadapter.llm.bounds.CallBound`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from agentadapter.llm.errors import BudgetExceededError, ConfigurationError, UnpricedModelError

if TYPE_CHECKING:
    from agentadapter.llm.bounds import CallBound

logger = logging.getLogger("agentadapter.budget")

Window = Literal["request", "day", "month", "total"]
_SCOPE_TAGS = {"project": "project", "agent": "agent", "key": "api_key", "run": "run", "tenant": "tenant"}


@dataclass(slots=True, frozen=True)
class Budget:
    """A spend limit for a scope over a window."""

    scope: str = "global"
    limit_usd: float = 0.0
    window: Window = "day"
    alert_at: float | None = None
    """Share of the limit (0-1] at which an alert fires, once per window."""
    allow_unpriced: bool = False
    """Let calls to models without a known price through (they count as $0): off by default, since
    nothing bounds what such a call spends and a budget that lets it through would not limit spend."""

    def __post_init__(self) -> None:
        if self.limit_usd <= 0:
            raise ConfigurationError(f"budget {self.scope!r}: limit_usd must be positive")
        if self.scope != "global":
            kind, sep, name = self.scope.partition(":")
            if not sep or not name or (kind not in _SCOPE_TAGS and kind != "tag"):
                raise ConfigurationError(
                    f"budget scope {self.scope!r} is not understood; use global, project:NAME, agent:NAME, "
                    "key:NAME, run:ID, tenant:ID or tag:KEY=VALUE"
                )
            if kind == "tag" and "=" not in name:
                raise ConfigurationError(f"budget scope {self.scope!r}: write tag scopes as tag:KEY=VALUE")

    def applies_to(self, tags: Mapping[str, str]) -> bool:
        if self.scope == "global":
            return True
        kind, _, name = self.scope.partition(":")
        if kind == "tag":
            key, _, value = name.partition("=")
            return tags.get(key) == value
        return tags.get(_SCOPE_TAGS[kind]) == name

    def window_key(self, now: dt.datetime) -> str:
        if self.window == "day":
            return now.strftime("%Y-%m-%d")
        if self.window == "month":
            return now.strftime("%Y-%m")
        return "all"


@dataclass(slots=True, frozen=True)
class BudgetAlert:
    """A budget crossed its alert threshold."""

    scope: str
    window: str
    window_key: str
    limit_usd: float
    spent_usd: float
    threshold: float


class BudgetStore(Protocol):
    """Where spend and reservations live (in-process here; the database or Redis at scale)."""

    async def try_reserve(self, key: str, amount: float, limit: float) -> tuple[bool, float]:
        """Reserve ``amount`` unless committed + reserved + amount would exceed ``limit``.

        Returns (reserved?, committed + reserved before this reservation)."""
        ...

    async def settle(self, key: str, reserved: float, actual: float) -> float:
        """Release a reservation and commit the actual spend; returns the committed total."""
        ...

    async def spent(self, key: str) -> float: ...

    async def mark_alerted(self, key: str) -> bool:
        """True the first time it is called for ``key`` (so an alert fires once per window)."""
        ...


class Hold(Protocol):
    """A reservation made by a :class:`SpendGuard`, settled once when the call ends."""

    async def settle(self, actual_usd: float | None) -> None:
        """Commit the actual cost (None: unknown price) and release what was held."""
        ...


class SpendGuard(Protocol):
    """Asked before every call: hold the call's estimated cost, or refuse it by raising."""

    async def reserve(self, estimate_usd: float, tags: Mapping[str, str]) -> Hold:
        """Hold ``estimate_usd`` for a call with these tags; raise
        :class:`~agentadapter.llm.errors.BudgetExceededError` (or a subclass) to refuse it."""
        ...


@runtime_checkable
class BoundedSpendGuard(SpendGuard, Protocol):
    """A :class:`SpendGuard` the facade asks with the call's whole bound instead of its USD alone."""

    async def reserve_bound(self, bound: CallBound, tags: Mapping[str, str]) -> Hold:
        """Hold what ``bound`` says the call may cost at most (``bound.priced`` False: the model has no
        known price), or refuse the call by raising."""
        ...


class InProcessBudgetStore:
    """Spend and reservations in this process, safe across threads and tasks."""

    def __init__(self) -> None:
        self._committed: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._alerted: set[str] = set()
        self._lock = threading.Lock()

    async def try_reserve(self, key: str, amount: float, limit: float) -> tuple[bool, float]:
        with self._lock:
            used = self._committed.get(key, 0.0) + self._reserved.get(key, 0.0)
            if used + amount > limit:
                return False, used
            self._reserved[key] = self._reserved.get(key, 0.0) + amount
            return True, used

    async def settle(self, key: str, reserved: float, actual: float) -> float:
        with self._lock:
            self._reserved[key] = max(0.0, self._reserved.get(key, 0.0) - reserved)
            total = self._committed.get(key, 0.0) + actual
            self._committed[key] = total
            return total

    async def spent(self, key: str) -> float:
        with self._lock:
            return self._committed.get(key, 0.0)

    async def mark_alerted(self, key: str) -> bool:
        with self._lock:
            if key in self._alerted:
                return False
            self._alerted.add(key)
            return True


AlertCallback = Callable[[BudgetAlert], "Awaitable[None] | None"]


@dataclass(slots=True)
class Reservation:
    """The estimate held against each applicable budget until the call settles."""

    guard: BudgetGuard
    holds: list[tuple[Budget, str, float]] = field(default_factory=list)
    settled: bool = False

    async def settle(self, actual_usd: float | None) -> None:
        """Commit the actual cost (None: unknown price, nothing is committed) and fire alerts."""
        if self.settled:
            return
        self.settled = True
        await self.guard._settle(self, actual_usd or 0.0)


class BudgetGuard:
    """Checks and records spend against a set of budgets (a :class:`BoundedSpendGuard`)."""

    def __init__(
        self,
        budgets: Iterable[Budget],
        *,
        store: BudgetStore | None = None,
        on_alert: Iterable[AlertCallback] = (),
        webhook: Callable[[BudgetAlert], Awaitable[None]] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.budgets = list(budgets)
        self.store: BudgetStore = store if store is not None else InProcessBudgetStore()
        self.callbacks: list[AlertCallback] = list(on_alert)
        self.webhook = webhook
        self._clock = clock

    @property
    def active(self) -> bool:
        return bool(self.budgets)

    def _key(self, budget: Budget, window_key: str) -> str:
        return f"{budget.scope}|{budget.window}|{window_key}"

    async def reserve_bound(self, bound: CallBound, tags: Mapping[str, str]) -> Reservation:
        """Hold the call's worst case (``bound.usd``), or refuse it.

        A model without a known price (``bound.priced`` False) is refused by the first budget that
        applies and does not set ``allow_unpriced``; budgets that allow it hold $0 for the call.
        """
        if not bound.priced:
            for budget in self.budgets:
                if budget.applies_to(tags) and not budget.allow_unpriced:
                    raise UnpricedModelError(
                        f"UnpricedModelError: {bound.model} has no known price, so the {budget.window} budget of "
                        f"{budget.scope} (${budget.limit_usd:.4f}) cannot bound what this call spends; nothing "
                        f"was sent. Price the model (catalog: {{{bound.model}: {{pricing: {{input: USD_PER_MTOK, "
                        "output: USD_PER_MTOK}}}} in the configuration, or catalog.override(...)) or let the "
                        "budget take unpriced calls (allow_unpriced: true; they count as $0)",
                        model=bound.model, scope=budget.scope, limit_usd=budget.limit_usd,
                    )
        return await self.reserve(bound.usd if bound.priced else 0.0, tags)

    async def reserve(self, estimate_usd: float, tags: Mapping[str, str]) -> Reservation:
        """Hold ``estimate_usd`` against every applicable budget, or refuse the call."""
        reservation = Reservation(self)
        now = self._clock()
        for budget in self.budgets:
            if not budget.applies_to(tags):
                continue
            if budget.window == "request":
                if estimate_usd > budget.limit_usd:
                    await self._release(reservation)
                    raise BudgetExceededError(
                        f"BudgetExceededError: this call may cost up to ${estimate_usd:.6f}, over the "
                        f"${budget.limit_usd:.6f} per-request budget of {budget.scope}; nothing was sent. "
                        "Lower max_tokens, shorten the prompt, or raise the budget",
                        scope=budget.scope, limit_usd=budget.limit_usd, spent_usd=0.0,
                    )
                continue
            window_key = budget.window_key(now)
            key = self._key(budget, window_key)
            try:
                ok, used = await self.store.try_reserve(key, estimate_usd, budget.limit_usd)
            except BaseException:
                await self._release(reservation)
                raise
            if not ok:
                await self._release(reservation)
                raise BudgetExceededError(
                    f"BudgetExceededError: the {budget.window} budget of {budget.scope} is ${budget.limit_usd:.4f}; "
                    f"${used:.6f} is spent or reserved and this call may cost up to ${estimate_usd:.6f}; "
                    "nothing was sent. Wait for the next window, lower max_tokens, or raise the budget",
                    scope=budget.scope, limit_usd=budget.limit_usd, spent_usd=used,
                )
            reservation.holds.append((budget, window_key, estimate_usd))
        return reservation

    async def _release(self, reservation: Reservation) -> None:
        for budget, window_key, amount in reservation.holds:
            await self.store.settle(self._key(budget, window_key), amount, 0.0)
        reservation.holds.clear()
        reservation.settled = True

    async def _settle(self, reservation: Reservation, actual_usd: float) -> None:
        for budget, window_key, amount in reservation.holds:
            total = await self.store.settle(self._key(budget, window_key), amount, actual_usd)
            if budget.alert_at is not None and total >= budget.alert_at * budget.limit_usd:
                key = self._key(budget, window_key)
                if await self.store.mark_alerted(key):
                    await self._alert(BudgetAlert(budget.scope, budget.window, window_key, budget.limit_usd,
                                                  total, budget.alert_at))

    async def _alert(self, alert: BudgetAlert) -> None:
        logger.warning(
            "budget %s (%s %s) reached %.0f%% of $%.4f: $%.6f spent",
            alert.scope, alert.window, alert.window_key, alert.threshold * 100, alert.limit_usd, alert.spent_usd,
            extra={"event": "budget.alert", "scope": alert.scope, "spent_usd": alert.spent_usd,
                   "limit_usd": alert.limit_usd},
        )
        for callback in self.callbacks:
            result = callback(alert)
            if result is not None:
                await result
        if self.webhook is not None:
            try:
                await self.webhook(alert)
            except Exception as exc:  # an alert must never fail the call that triggered it
                logger.error("budget alert webhook failed (%s: %s); the alert was logged", type(exc).__name__, exc)

    async def spent(self, scope: str = "global", window: Window = "day") -> float:
        """Spend so far in the current window of the budget with this scope and window."""
        for budget in self.budgets:
            if budget.scope == scope and budget.window == window:
                return await self.store.spent(self._key(budget, budget.window_key(self._clock())))
        return 0.0
