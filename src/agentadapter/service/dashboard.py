"""What the dashboard (``/ui``) shows, read for one tenant: runs, costs, backend health, agents,
workflows, evaluations and archives.

The web pages (:mod:`agentadapter.server.ui`) hold no logic: each page asks one function here for a
plain view object and renders it. Everything is read through the store with the caller's tenant, so
another tenant's id is a :class:`~agentadapter.store.errors.RecordNotFound` (a 404 page). Backend
health comes from the live reliability store of the process's ``LLM`` (shared through Redis when
the server has it), the catalog from the library; neither names a base URL or a key.
"""

from __future__ import annotations

import difflib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agentadapter.llm import catalog
from agentadapter.llm.client import LLM
from agentadapter.llm.ledger import UsageTotals
from agentadapter.service import credits as credit_service
from agentadapter.service.common import ServiceParts
from agentadapter.service.errors import InvalidInput
from agentadapter.store import agents as agent_store
from agentadapter.store import archives as archive_store
from agentadapter.store import credits as credit_store
from agentadapter.store import evals as eval_store
from agentadapter.store import runs as run_store
from agentadapter.store import tenants as tenant_store
from agentadapter.store import workflows as workflow_store
from agentadapter.store.database import Database
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import pending_approvals
from agentadapter.store.usage import usage_totals

__all__ = [
    "COST_GROUPS",
    "BackendRow",
    "CostGroup",
    "CostReport",
    "RunRow",
    "VersionDiff",
    "agent_view",
    "archives_list",
    "backend_health",
    "cost_report",
    "experiments_list",
    "list_agents",
    "list_runs",
    "list_workflows",
    "model_catalog",
    "run_view",
    "version_diffs",
    "workflow_view",
]

COST_GROUPS = ("model", "agent", "project", "source")
"""The breakdowns of the costs page, beside spend per day."""


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as the live list shows it."""

    id: uuid.UUID
    status: str
    target: str
    kind: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_ms: float
    created_at: datetime | None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _tokens(usage: Any, name: str) -> int:
    value = usage.get(name, 0) if isinstance(usage, dict) else 0
    return int(value) if isinstance(value, int | float) else 0


async def list_runs(
    db: Database, tenant_id: uuid.UUID, *, status: str | None = None, agent_id: uuid.UUID | None = None, limit: int = 50
) -> list[RunRow]:
    """The tenant's newest runs, each with the name of what it ran."""
    async with db.session() as session:
        page = await run_store.list_runs(session, tenant_id, limit=limit, status=status, agent_id=agent_id)
        names = await _agent_names(session, tenant_id)
    rows = []
    for run in page.items:
        if run.get("workflow_id") is not None or run.get("workflow_name"):
            target, kind = run.get("workflow_name") or "workflow", "workflow"
        else:
            agent = run.get("agent_id")
            target, kind = names.get(agent, "(deleted agent)") if agent else "-", "agent"
        usage = run.get("usage") or {}
        rows.append(
            RunRow(
                id=run["id"],
                status=run["status"],
                target=target,
                kind=kind,
                input_tokens=_tokens(usage, "input_tokens"),
                output_tokens=_tokens(usage, "output_tokens"),
                cost_usd=float(run.get("cost_usd") or 0.0),
                duration_ms=float(run.get("duration_ms") or 0.0),
                created_at=run.get("created_at"),
            )
        )
    return rows


async def _agent_names(session: Any, tenant_id: uuid.UUID) -> dict[uuid.UUID, str]:
    page = await agent_store.list_agents(session, tenant_id, limit=100)
    return {agent["id"]: agent["name"] for agent in page.items}


async def run_view(db: Database, tenant_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any]:
    """The run (its columns), its agent steps (``agents``), what it ran (``target``) and, when it is paused,
    the tool calls waiting for a decision (``pending``: call id, tool, agent, arguments as indented JSON)."""
    async with db.session() as session:
        run = await run_store.read_run(session, tenant_id, run_id)
        run["agents"] = await run_store.read_agent_runs(session, tenant_id, run_id)
        names = await _agent_names(session, tenant_id) if run.get("agent_id") else {}
    run["target"] = run.get("workflow_name") or names.get(run.get("agent_id"), "(deleted agent)")  # type: ignore[arg-type]
    usage = run.get("usage") or {}
    run["input_tokens"], run["output_tokens"] = _tokens(usage, "input_tokens"), _tokens(usage, "output_tokens")
    run["pending"] = [
        {
            "call_id": str(call.get("call_id", "")),
            "tool": str(call.get("tool", "")),
            "agent": call.get("agent"),
            "arguments": json.dumps(call.get("arguments") or {}, indent=2, sort_keys=True, default=str),
        }
        for call in pending_approvals(run["status"], run.get("details"))
    ]
    return run


# ------------------------------------------------------------------------------------------------ costs


@dataclass(frozen=True, slots=True)
class CostGroup:
    """The spend of one model, agent, project or source."""

    name: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_requests: int


@dataclass(slots=True)
class CostReport:
    """The costs page: spend per day and model (the chart), breakdowns, credits and budgets."""

    since: datetime
    days: list[str]
    series: dict[str, list[float]]
    """Per model (or agent, project, source: ``chart_by``), the USD spent each day of ``days`` (the chart's lines)."""
    chart_by: str
    groups: dict[str, list[CostGroup]]
    total: CostGroup
    metered: bool
    balance_usd: float | None
    reserved_usd: float | None
    budgets: list[dict[str, Any]] = field(default_factory=list)


def _group(name: str, totals: UsageTotals) -> CostGroup:
    return CostGroup(
        name=name,
        requests=totals.requests,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cost_usd=round(totals.cost_usd, 10),
        unpriced_requests=totals.unpriced_requests,
    )


def _columns(group: str) -> list[str]:
    # A model by its full id (provider/model), as agents and the catalog name it.
    return ["provider", "model"] if group == "model" else [group]


def _name(group: str, totals: UsageTotals) -> str:
    return _model_name(totals) if group == "model" else str(totals.key.get(group) or "-")


async def cost_report(
    state: ServiceParts, tenant_id: uuid.UUID, *, days: int = 30, chart_by: str = "model"
) -> CostReport:
    """Spend over the last ``days`` days (UTC): per day and ``chart_by`` (one of :data:`COST_GROUPS`: the
    chart's lines), and in total by model, agent, project and source."""
    if chart_by not in COST_GROUPS:
        raise InvalidInput(f"cannot chart by {chart_by!r}; use one of {', '.join(COST_GROUPS)}", param="by")
    await state.llm.ledger.flush()  # a call that has just finished is counted
    await credit_service.charges_written(state.tenant_llms)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1)
    day_names = [(since + timedelta(days=n)).date().isoformat() for n in range(days)]
    async with state.db.session() as session:
        daily = await usage_totals(session, tenant_id, ["day", *_columns(chart_by)], since, None, {})
        groups = {name: await usage_totals(session, tenant_id, _columns(name), since, None, {}) for name in COST_GROUPS}
        total = await usage_totals(session, tenant_id, [], since, None, {})
        projects = await _project_names(session, tenant_id, [str(g.key.get("project")) for g in groups["project"]])
        account = await credit_store.account(session, tenant_id)
    series: dict[str, list[float]] = {}
    index = {day: n for n, day in enumerate(day_names)}
    for row in daily:
        day = str(row.key.get("day"))[:10]
        if day not in index:
            continue
        line = series.setdefault(_name(chart_by, row), [0.0] * days)
        line[index[day]] += row.cost_usd
    balance = reserved = None
    if account is not None:
        balance, reserved = await credit_service.credit_balance(account, state.tenant_llms)
    report = CostReport(
        since=since,
        days=day_names,
        series=series,
        chart_by=chart_by,
        groups={
            name: sorted(
                (_group(_shown(name, g, projects), g) for g in rows if g.requests),
                key=lambda g: -g.cost_usd,
            )
            for name, rows in groups.items()
        },
        total=_group("total", total[0]) if total else _group("total", UsageTotals()),
        metered=account is not None,
        balance_usd=balance,
        reserved_usd=reserved,
        budgets=_budgets(state.llm, tenant_id),
    )
    return report


def _model_name(totals: UsageTotals) -> str:
    provider, model = totals.key.get("provider"), totals.key.get("model")
    if not model:
        return "(unknown)"
    return f"{provider}/{model}" if provider and not str(model).startswith(f"{provider}/") else str(model)


def _shown(group: str, totals: UsageTotals, projects: dict[str, str]) -> str:
    name = _name(group, totals)
    return projects.get(name, name) if group == "project" else name


async def _project_names(session: Any, tenant_id: uuid.UUID, ids: Sequence[str]) -> dict[str, str]:
    """The tenant's projects' names by id (usage records name a project by its id)."""
    names = {}
    for raw in ids:
        try:
            names[raw] = (await tenant_store.get_project(session, tenant_id, uuid.UUID(raw))).name
        except (ValueError, RecordNotFound):
            continue  # not an id, or a project since deleted: shown as recorded
    return names


def _budgets(llm: LLM, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """The server's budgets that apply to this tenant's calls: global ones and those on its tenant tag."""
    mine = f"tag:tenant={tenant_id}"
    return [
        {"scope": "all tenants" if b.scope == "global" else "this tenant", "limit_usd": b.limit_usd, "window": b.window}
        for b in llm.budgets.budgets
        if b.scope in ("global", mine)
    ]


# ------------------------------------------------------------------------------------------------ backends


@dataclass(frozen=True, slots=True)
class BackendRow:
    """One target's health as the backends page shows it."""

    target: str
    breaker: str
    calls: int
    failures: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    in_flight: int
    last_error: str | None
    requests_headroom: float | None
    """Share (0-1) of the backend's requests-per-minute bucket left now; None when it has no limit."""
    tokens_headroom: float | None


def _headroom(bucket: Any) -> float | None:
    if bucket is None or not getattr(bucket, "capacity", 0):
        return None
    bucket.wait_time(0)  # refills the bucket to now
    return max(0.0, min(1.0, float(bucket.level) / float(bucket.capacity)))


def backend_health(llm: LLM) -> list[BackendRow]:
    """Every target this process has called: breaker, error rate, latency percentiles, rate-limit headroom."""
    rows = []
    for item in llm.health().values():
        limiter = llm.reliability.limiter(item.target.split("/", 1)[0])
        rows.append(
            BackendRow(
                target=item.target,
                breaker=str(getattr(item.breaker, "value", item.breaker)),
                calls=item.calls,
                failures=item.failures,
                error_rate=None if item.success_rate is None else round(1.0 - item.success_rate, 4),
                p50_ms=item.p50_ms,
                p95_ms=item.p95_ms,
                in_flight=item.in_flight,
                last_error=item.last_error,
                requests_headroom=_headroom(getattr(limiter, "requests", None)),
                tokens_headroom=_headroom(getattr(limiter, "tokens", None)),
            )
        )
    return rows


def model_catalog(llm: LLM) -> list[dict[str, Any]]:
    """The catalog's models with their prices (USD per million tokens) and capabilities."""
    models = []
    for model_id, caps in sorted(catalog.known_models().items()):
        pricing = caps.pricing
        models.append(
            {
                "id": model_id,
                "context_window": caps.context_window,
                "max_output_tokens": caps.max_output_tokens,
                "input_usd": pricing.input if pricing else None,
                "output_usd": pricing.output if pricing else None,
                "capabilities": [
                    name
                    for name in ("tools", "vision", "json_schema", "reasoning", "prompt_caching")
                    if getattr(caps, name)
                ],
            }
        )
    return models


# ------------------------------------------------------------------------------------------------ agents


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """What changed from one stored version to the next (a unified diff of their specs)."""

    version: int
    created_at: datetime | None
    diff: str


def _spec_text(spec: Any) -> list[str]:
    return json.dumps(spec, indent=2, sort_keys=True, default=str).splitlines(keepends=True)


def version_diffs(versions: Sequence[tuple[int, datetime | None, Any]]) -> list[VersionDiff]:
    """Each version (newest first) with its diff from the one before (the first: its whole spec)."""
    ordered = sorted(versions, key=lambda v: v[0])
    diffs = []
    previous: list[str] = []
    for number, created, spec in ordered:
        text = _spec_text(spec)
        diff = "".join(difflib.unified_diff(previous, text, f"version {number - 1}", f"version {number}"))
        diffs.append(VersionDiff(number, created, diff or "(no change)"))
        previous = text
    return list(reversed(diffs))


async def list_agents(db: Database, tenant_id: uuid.UUID, *, limit: int = 100) -> list[dict[str, Any]]:
    async with db.session() as session:
        return list((await agent_store.list_agents(session, tenant_id, limit=limit)).items)


async def agent_view(db: Database, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any]:
    """The agent, its versions with their diffs (``versions``) and its latest runs (``runs``)."""
    async with db.session() as session:
        agent = await agent_store.read_agent(session, tenant_id, agent_id)
        versions = await agent_store.list_agent_versions(session, tenant_id, agent_id)
    agent["versions"] = version_diffs([(v.version, v.created_at, v.spec) for v in versions])
    agent["runs"] = await list_runs(db, tenant_id, agent_id=agent_id, limit=10)
    return agent


async def list_workflows(db: Database, tenant_id: uuid.UUID, *, limit: int = 100) -> list[dict[str, Any]]:
    async with db.session() as session:
        page = await workflow_store.list_workflows(session, tenant_id, limit=limit)
    return [
        {
            "id": w.id,
            "name": w.name,
            "description": w.description,
            "version": w.version,
            "strategy": (w.spec or {}).get("strategy", "sequential"),
            "updated_at": w.updated_at,
        }
        for w in page.items
    ]


async def workflow_view(db: Database, tenant_id: uuid.UUID, workflow_id: uuid.UUID) -> dict[str, Any]:
    async with db.session() as session:
        workflow = await workflow_store.get_workflow(session, tenant_id, workflow_id)
    return {
        "id": workflow.id,
        "name": workflow.name,
        "description": workflow.description,
        "version": workflow.version,
        "spec": json.dumps(workflow.spec, indent=2, sort_keys=True, default=str),
        "updated_at": workflow.updated_at,
    }


# ------------------------------------------------------------------------------------------------ evaluations


async def experiments_list(db: Database, tenant_id: uuid.UUID, *, limit: int = 50) -> list[dict[str, Any]]:
    async with db.session() as session:
        page = await eval_store.list_experiments(session, tenant_id, limit=limit)
    return [
        {
            "id": e.id,
            "name": e.name,
            "status": e.status,
            "planned": e.planned,
            "completed": e.completed,
            "cost_usd": e.cost_usd,
            "dataset_version": e.dataset_version,
        }
        for e in page.items
    ]


async def archives_list(db: Database, tenant_id: uuid.UUID, *, limit: int = 50) -> list[dict[str, Any]]:
    async with db.session() as session:
        page = await archive_store.list_archives(session, tenant_id, limit=limit)
    return [
        {
            "id": a.id,
            "name": a.name,
            "description": a.description,
            "embedding_model": a.embedding_model,
            "dimensions": a.dimensions,
        }
        for a in page.items
    ]
