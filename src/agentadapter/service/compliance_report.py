"""A tenant's compliance report, as JSON (:func:`compliance_report`) and as a readable HTML page (:func:`report_html`).

What it holds: the data the tenant keeps, by category and by age (how many rows, the oldest and
newest, how many fall in each age band); the retention in force (the tenant's own, or the server's)
and the anonymization settings; the erasures and exports performed and the key changes (provider
key rotations, API keys created and revoked), from the erasure records and the audit log; and who
accessed the tenant's data, by role, from the audit log (each entry's actor's role) and the roles
of its users and active API keys. Everything is read in one session; nothing is written.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.service.compliance import policy_view
from agentadapter.store import compliance as store
from agentadapter.store.compliance_models import UserConsent
from agentadapter.store.files_models import StoredFile
from agentadapter.store.models import (
    AgentMessage,
    AgentRun,
    ApiKey,
    AuditLog,
    ProviderKey,
    Run,
    Tenant,
    UsageRecord,
    User,
    utcnow,
)
from agentadapter.store.threads_models import Thread

__all__ = ["AGE_BANDS", "compliance_report", "report_html"]

AGE_BANDS: tuple[tuple[str, float | None], ...] = (
    ("under_7_days", 7),
    ("7_to_30_days", 30),
    ("30_to_90_days", 90),
    ("over_90_days", None),
)
_CATEGORIES: tuple[tuple[str, Any, Any], ...] = (
    ("runs", Run, Run.created_at),
    ("agent_steps", AgentRun, AgentRun.started_at),
    ("agent_messages", AgentMessage, AgentMessage.created_at),
    ("threads", Thread, Thread.created_at),
    ("usage_records", UsageRecord, UsageRecord.ts),
    ("audit_entries", AuditLog, AuditLog.created_at),
    ("files", StoredFile, StoredFile.created_at),
    ("users", User, User.created_at),
    ("api_keys", ApiKey, ApiKey.created_at),
    ("provider_keys", ProviderKey, ProviderKey.created_at),
    ("consents", UserConsent, UserConsent.created_at),
)
_KEY_ACTIONS = ("provider_key.create", "provider_key.rotate", "provider_key.delete", "api_key.create", "api_key.revoke")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def _held(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    held: dict[str, Any] = {}
    for name, model, moment in _CATEGORIES:
        mine = model.tenant_id == tenant_id
        row = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.min(moment), sa.func.max(moment)).select_from(model).where(mine)
            )
        ).one()
        bands: dict[str, int] = {}
        lower: float = 0
        for band, upper in AGE_BANDS:
            condition = [mine, moment <= now - timedelta(days=lower)]
            if upper is not None:
                condition.append(moment > now - timedelta(days=upper))
            bands[band] = int(
                await session.scalar(sa.select(sa.func.count()).select_from(model).where(*condition)) or 0
            )
            lower = upper or lower
        oldest, newest = row[1], row[2]
        held[name] = {
            "count": int(row[0]),
            "oldest": _iso(_aware(oldest)),
            "newest": _iso(_aware(newest)),
            "by_age": bands,
        }
    return held


def _aware(moment: Any) -> datetime | None:
    # min()/max() come back as the driver gives them (SQLite: naive text or datetime): read as UTC.
    if moment is None:
        return None
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _audit(
    session: AsyncSession, tenant_id: uuid.UUID, actions: tuple[str, ...] | str, limit: int = 200
) -> list[dict[str, Any]]:
    condition = AuditLog.action.in_(actions) if isinstance(actions, tuple) else AuditLog.action.like(actions)
    rows = await session.scalars(
        sa.select(AuditLog)
        .where(AuditLog.tenant_id == tenant_id, condition)
        .order_by(AuditLog.created_at.desc())
        .limit(limit)
    )
    return [
        {
            "at": _iso(r.created_at),
            "action": r.action,
            "actor_type": r.actor_type,
            "actor_id": r.actor_id,
            "resource_id": r.resource_id,
            "details": r.details,
        }
        for r in rows
    ]


async def _access_by_role(session: AsyncSession, tenant_id: uuid.UUID, since: datetime) -> dict[str, Any]:
    """Audit entries since ``since`` grouped by their actor's role, and the tenant's principals by role."""
    rows = (
        await session.execute(
            sa.select(AuditLog.actor_type, AuditLog.actor_id, AuditLog.action).where(
                AuditLog.tenant_id == tenant_id, AuditLog.created_at >= since
            )
        )
    ).all()
    key_roles = {
        str(k): r
        for k, r in (
            await session.execute(sa.select(ApiKey.id, ApiKey.role).where(ApiKey.tenant_id == tenant_id))
        ).all()
    }
    user_roles = {
        str(u): r
        for u, r in (await session.execute(sa.select(User.id, User.role).where(User.tenant_id == tenant_id))).all()
    }
    by_role: dict[str, dict[str, Any]] = {}
    for actor_type, actor_id, action in rows:
        if actor_type == "system":
            role = "operator"
        else:
            role = (key_roles if actor_type == "api_key" else user_roles).get(str(actor_id), "unknown (removed)")
        entry = by_role.setdefault(role, {"entries": 0, "actions": {}})
        entry["entries"] += 1
        entry["actions"][action] = entry["actions"].get(action, 0) + 1
    users_by_role: dict[str, int] = dict(
        (
            await session.execute(
                sa.select(User.role, sa.func.count()).where(User.tenant_id == tenant_id).group_by(User.role)
            )
        ).all()
    )
    keys_by_role: dict[str, int] = dict(
        (
            await session.execute(
                sa.select(ApiKey.role, sa.func.count())
                .where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
                .group_by(ApiKey.role)
            )
        ).all()
    )
    return {
        "since": _iso(since),
        "audit_entries_by_role": dict(sorted(by_role.items())),
        "users_by_role": users_by_role,
        "active_api_keys_by_role": keys_by_role,
    }


async def compliance_report(
    session: AsyncSession, tenant_id: uuid.UUID, *, default_retention_days: float, access_days: float = 90.0
) -> dict[str, Any]:
    """The tenant's report (see the module docstring); ``access_days``: how far back access is summed."""
    now = utcnow()
    tenant = await session.get(Tenant, tenant_id)
    policy = await store.get_policy(session, tenant_id)
    view = policy_view(policy, default_retention_days=default_retention_days)
    erasures = await store.list_erasures(session, tenant_id)
    consent_rows = (
        await session.execute(
            sa.select(UserConsent.purpose, UserConsent.granted, sa.func.count())
            .where(UserConsent.tenant_id == tenant_id)
            .group_by(UserConsent.purpose, UserConsent.granted)
        )
    ).all()
    consents: dict[str, dict[str, int]] = {}
    for purpose, granted, count in consent_rows:
        consents.setdefault(purpose, {"granted": 0, "refused": 0})["granted" if granted else "refused"] += int(count)
    return {
        "tenant": {"id": str(tenant_id), "name": tenant.name if tenant else None},
        "generated_at": now.isoformat(),
        "data_held": await _held(session, tenant_id, now),
        "retention": {
            "days": view["effective_retention_days"],
            "source": "tenant" if view["retention_days"] else "server",
            "purges_before": (now - timedelta(days=float(view["effective_retention_days"]))).isoformat()
            if view["effective_retention_days"]
            else None,
        },
        "anonymization": {k: view[k] for k in ("pii_mode", "detectors", "phone_region", "external_providers")},
        "consents": {"required": view["required_consents"], "recorded": consents},
        "erasures": [
            {
                "id": str(e.id),
                "scope": e.scope,
                "status": e.status,
                "requested_by": e.requested_by,
                "requested_at": _iso(e.created_at),
                "execute_after": _iso(e.execute_after),
                "executed_at": _iso(e.executed_at),
                "removed": e.report,
            }
            for e in erasures
        ],
        "exports": await _audit(session, tenant_id, ("tenant.export",)),
        "key_changes": await _audit(session, tenant_id, _KEY_ACTIONS),
        "access": await _access_by_role(session, tenant_id, now - timedelta(days=access_days)),
    }


# ------------------------------------------------------------------------------------------------- HTML

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}h2{margin-top:2rem}code{font-size:.9em}"
)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(html.escape(str(v)) for v in value) or "-"
    return html.escape(str(value)) if value is not None else "-"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (no scripts, no outside assets; every value escaped)."""
    tenant = report["tenant"]
    bands = [band for band, _ in AGE_BANDS]
    held = [
        [name, item["count"], item["oldest"], item["newest"], *(item["by_age"][b] for b in bands)]
        for name, item in report["data_held"].items()
    ]
    retention, anonymization, access = report["retention"], report["anonymization"], report["access"]
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Compliance report: "
        f"{html.escape(str(tenant['name']))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Compliance report: {html.escape(str(tenant['name']))}</h1>",
        f"<p>Tenant <code>{html.escape(tenant['id'])}</code>, generated {html.escape(report['generated_at'])}.</p>",
        "<h2>Data held</h2>",
        _table(["category", "rows", "oldest", "newest", *[b.replace("_", " ") for b in bands]], held),
        "<h2>Retention</h2>",
        _table(
            ["days", "set by", "purges what is older than"],
            [[retention["days"], retention["source"], retention["purges_before"]]],
        ),
        "<h2>Anonymization</h2>",
        _table(
            ["stored personal data", "detectors", "phone region", "external providers (masked before calls)"],
            [
                [
                    anonymization["pii_mode"],
                    anonymization["detectors"],
                    anonymization["phone_region"],
                    anonymization["external_providers"],
                ]
            ],
        ),
        "<h2>Consents</h2>",
        f"<p>Required before a run: {_cell(report['consents']['required'])}</p>",
        _table(
            ["purpose", "granted", "refused"],
            [[p, c["granted"], c["refused"]] for p, c in report["consents"]["recorded"].items()],
        ),
        "<h2>Erasures</h2>",
        _table(
            ["id", "scope", "status", "requested by", "requested", "executed", "removed"],
            [
                [
                    e["id"],
                    e["scope"],
                    e["status"],
                    e["requested_by"],
                    e["requested_at"],
                    e["executed_at"],
                    (e["removed"] or {}).get("deleted", {}),
                ]
                for e in report["erasures"]
            ],
        ),
        "<h2>Exports</h2>",
        _table(["when", "actor"], [[x["at"], f"{x['actor_type']} {x['actor_id']}"] for x in report["exports"]]),
        "<h2>Key changes</h2>",
        _table(
            ["when", "action", "actor", "key"],
            [
                [x["at"], x["action"], f"{x['actor_type']} {x['actor_id']}", x["resource_id"]]
                for x in report["key_changes"]
            ],
        ),
        f"<h2>Access by role (since {html.escape(str(access['since']))})</h2>",
        _table(
            ["role", "audit entries", "actions"],
            [[role, a["entries"], a["actions"]] for role, a in access["audit_entries_by_role"].items()],
        ),
        _table(
            ["principals", "by role"],
            [["users", access["users_by_role"]], ["active API keys", access["active_api_keys_by_role"]]],
        ),
        "</body></html>",
    ]
    return "".join(parts)
