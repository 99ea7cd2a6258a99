"""``/v1/usage``: the tokens and cost of the caller's tenant's LLM calls, totalled by day, model, agent, ...

Every call a tenant's runs (and the gateway) make is a usage record (``store/usage.py``); this route
groups and sums them in the database. ``day`` and ``hour`` are UTC. The ledger writes records in
the background, so the route first writes what it holds: a call that has just finished is counted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from agentadapter.llm.ledger import UsageTotals
from agentadapter.server.auth import Principal
from agentadapter.server.deps import SessionDep, StateDep, require
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import UsageListPublic, UsageTotalsPublic
from agentadapter.service.common import invalid
from agentadapter.store.usage import usage_totals

__all__ = ["GROUPS", "router"]

router = APIRouter(prefix=API_PREFIX + "/usage", tags=["usage"])

UsageRead = Annotated[Principal, Depends(require("usage", "read"))]

GROUPS = ("day", "hour", "model", "provider", "agent", "project", "source")
"""What usage can be grouped by (and, but for the time buckets, filtered by)."""

_Filter = Annotated[str | None, Query(max_length=200)]


def _group_by(raw: str) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise invalid("group_by", f"cannot group by {', '.join(map(repr, unknown))}; use a comma-separated list of "
                                  f"{', '.join(GROUPS)}", code="invalid_group_by")
    if len(set(names)) != len(names):
        raise invalid("group_by", f"{raw!r} names a group twice", code="invalid_group_by")
    return names


def _moment(param: str, raw: str | None, *, end_of_day: bool) -> datetime | None:
    """An ISO date (``until`` takes the whole day) or datetime (UTC when it has no offset)."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), UTC)
            return start + timedelta(days=1) if end_of_day else start
        moment = datetime.fromisoformat(text)
        # timedelta and astimezone overflow near years 1 and 9999: the caller's range, not a 500.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(param, f"{raw!r} is not an ISO date (2026-11-21) or date and time (2026-11-21T09:30:00Z) "
                             "between years 1 and 9999", code="invalid_datetime") from None


def _public(totals: UsageTotals) -> UsageTotalsPublic:
    return UsageTotalsPublic(
        **totals.key, requests=totals.requests, input_tokens=totals.input_tokens, output_tokens=totals.output_tokens,
        total_tokens=totals.total_tokens, cost_usd=round(totals.cost_usd, 10),
        cached_responses=totals.cached_responses, unpriced_requests=totals.unpriced_requests,
    )


def _sum(groups: list[UsageTotals]) -> UsageTotals:
    total = UsageTotals()
    for group in groups:
        for name in ("requests", "cached_responses", "unpriced_requests", "input_tokens", "output_tokens",
                     "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "latency_ms"):
            setattr(total, name, getattr(total, name) + getattr(group, name))
    return total


@router.get("", response_model=UsageListPublic)
async def get_usage(
    principal: UsageRead, session: SessionDep, state: StateDep,
    group_by: Annotated[str, Query(max_length=200, description=f"Comma-separated: {', '.join(GROUPS)}.")] = "day",
    since: Annotated[str | None, Query(max_length=40, description="From this ISO date or datetime on.")] = None,
    until: Annotated[str | None, Query(max_length=40, description=(
        "Before this datetime, or up to the end of this ISO date."))] = None,
    model: _Filter = None, provider: _Filter = None, agent: _Filter = None, project: _Filter = None,
    source: _Filter = None,
) -> UsageListPublic:
    names = _group_by(group_by)
    start, end = _moment("since", since, end_of_day=False), _moment("until", until, end_of_day=True)
    if start is not None and end is not None and start >= end:
        raise invalid("until", f"the range is empty: until ({until}) must come after since ({since})",
                      code="empty_range")
    filters = {name: value for name, value in (("model", model), ("provider", provider), ("agent", agent),
                                               ("project", project), ("source", source)) if value is not None}
    await state.llm.ledger.flush()  # the calls that have just finished count too
    groups = await usage_totals(session, principal.tenant_id, names, start, end, filters)
    if not names and groups and groups[0].requests == 0:
        groups = []
    return UsageListPublic(group_by=names, since=start, until=end, data=[_public(g) for g in groups],
                           total=_public(_sum(groups)))
