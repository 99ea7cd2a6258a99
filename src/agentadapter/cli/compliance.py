"""``agentadapter compliance``: the operator's side of compliance - reports, erasures, due erasures.

``compliance report NAME`` prints the tenant's compliance report (JSON, or ``--html``; ``-o FILE``).
``compliance erase NAME [--user ID]`` asks for the erasure of a user (or of the whole tenant) with the
soft-delete window (``AGENTADAPTER_ERASURE_GRACE_DAYS``), or ``--now`` to carry it out at once (one
already waiting in its window for the same subject is the one carried out);
``compliance run-due`` carries out every erasure whose window has passed (the server's housekeeping
does it too, every retention interval). Each prints what it did; the work is
:mod:`agentadapter.service.compliance`'s. From the command line an erasure reaches the database and
the local file storage; Redis keys are removed when ``AGENTADAPTER_REDIS_URL`` is set.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentadapter.cli.common import err, fail, find_tenant_id, out, with_database

if TYPE_CHECKING:
    from agentadapter.service.compliance import ErasureParts
    from agentadapter.store.database import Database

__all__ = ["compliance_app", "register"]

compliance_app = typer.Typer(name="compliance", help="Compliance: reports and erasures.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(compliance_app)


async def _parts(db: Database) -> tuple[ErasureParts, Any]:
    from agentadapter.config import get_settings
    from agentadapter.knowledge.storage import storage_from_url
    from agentadapter.redis_connections import RedisConnections
    from agentadapter.service.compliance import erasure_parts
    from agentadapter.service.knowledge import KnowledgeSettings

    settings = get_settings()
    redis = RedisConnections.from_settings(settings)
    storage = storage_from_url(KnowledgeSettings().files_url, settings.data_dir / "files")
    return erasure_parts(db, storage=storage, redis=redis.commands if redis else None), redis


@compliance_app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="the tenant's name")],
    html: Annotated[bool, typer.Option("--html", help="a readable HTML page instead of JSON")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file (default: stdout)")] = None,
) -> None:
    """Print a tenant's compliance report: data held by age, retention, anonymization, erasures, access."""
    from agentadapter.config import get_settings
    from agentadapter.service.compliance_report import compliance_report, report_html

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            tenant_id = await find_tenant_id(session, name)
            return await compliance_report(session, tenant_id, default_retention_days=get_settings().retention_days)

    data = with_database(work)
    text = report_html(data) if html else json.dumps(data, indent=2)
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote the compliance report of tenant {name} to {output}")
    else:
        print(text)


@compliance_app.command("erase")
def erase(
    name: Annotated[str, typer.Argument(help="the tenant's name")],
    user: Annotated[str | None, typer.Option(help="the user's id; omitted: erase the whole tenant")] = None,
    now: Annotated[bool, typer.Option("--now", help="carry it out at once (no soft-delete window)")] = False,
    reason: Annotated[str, typer.Option(help="why (kept with the erasure)")] = "",
) -> None:
    """Erase a user's data (or the whole tenant's) everywhere it lives, after the soft-delete window."""
    from agentadapter.service.common import Caller
    from agentadapter.service.compliance import execute_erasure, request_erasure

    try:
        user_id = uuid.UUID(user) if user else None
    except ValueError:
        raise fail(f"--user must be a user's id (a UUID), not {user!r}") from None

    async def work(db: Database) -> dict[str, Any]:
        async with db.write_session() as session:
            tenant_id = await find_tenant_id(session, name)
            caller = Caller.system(tenant_id)
            waiting = await _pending(session, tenant_id, user_id) if now else None
            row = waiting or await request_erasure(
                session, caller, user_id=user_id, reason=reason, grace_days=0 if now else None
            )
            erasure = {"id": str(row.id), "scope": row.scope, "execute_after": row.execute_after.isoformat()}
        if not now:
            return {**erasure, "status": "pending"}
        parts, redis = await _parts(db)
        try:
            # --now on a subject whose erasure waits in its window: that one is carried out, now.
            report = await execute_erasure(parts, tenant_id, uuid.UUID(erasure["id"]), caller=caller, force=True)
        finally:
            if redis is not None:
                await redis.aclose()
        return {**erasure, "status": "done", "report": report}

    result = with_database(work)
    out.print(json.dumps(result, indent=2), markup=False, highlight=False)


async def _pending(session: Any, tenant_id: uuid.UUID, user_id: uuid.UUID | None) -> Any:
    """The pending erasure of the same subject (the user, or the whole tenant), if one waits."""
    from agentadapter.store.compliance import list_erasures

    for row in await list_erasures(session, tenant_id, ["pending"]):
        if row.user_id == user_id and row.scope == ("tenant" if user_id is None else "user"):
            return row
    return None


@compliance_app.command("run-due")
def run_due() -> None:
    """Carry out every erasure whose soft-delete window has passed."""
    from agentadapter.service.compliance import execute_due_erasures

    async def work(db: Database) -> list[dict[str, Any]]:
        parts, redis = await _parts(db)
        try:
            return await execute_due_erasures(parts)
        finally:
            if redis is not None:
                await redis.aclose()

    reports = with_database(work)
    out.print(f"{len(reports)} erasure(s) carried out", markup=False)
