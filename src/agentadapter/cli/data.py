"""Data lifecycle commands: ``agentadapter db purge`` (retention) and ``agentadapter tenants export``.

``db purge`` deletes finished runs (with their agent runs, messages and events), usage records and
audit entries older than ``--days`` (``AGENTADAPTER_RETENTION_DAYS`` by default) and prints what it
deleted per table; ``--dry-run`` only counts. ``tenants export NAME`` writes the tenant's data as
one JSON document to stdout or ``-o FILE``, streamed, and records the export in the tenant's audit
log. ``agentadapter.cli.service.register`` adds both to its ``db`` and ``tenants`` groups.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentadapter.cli.common import EXIT_USAGE, err, fail, find_tenant_id, out, with_database
from agentadapter.cli.tables import Column, show_table

if TYPE_CHECKING:
    from agentadapter.store.database import Database
    from agentadapter.store.retention import PurgeReport

__all__ = ["register"]


def register(db_app: typer.Typer, tenants_app: typer.Typer) -> None:
    """Add ``purge`` to the ``db`` group and ``export`` to the ``tenants`` group."""
    db_app.command("purge")(db_purge)
    tenants_app.command("export")(tenants_export)


def db_purge(
    days: Annotated[float | None, typer.Option(
        min=0.0, help="delete what is older than this many days (default: AGENTADAPTER_RETENTION_DAYS)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be deleted; delete nothing")] = False,
) -> None:
    """Delete finished runs, usage records and audit entries older than the retention period."""
    from agentadapter.config import get_settings
    from agentadapter.store.retention import cutoff_for, purge

    period = days if days is not None else get_settings().retention_days
    try:
        cutoff = cutoff_for(period)
    except ValueError as error:
        raise fail(str(error), EXIT_USAGE) from None

    async def work(db: Database) -> PurgeReport:
        if days is None:  # the server's period, and each tenant's own where its compliance policy sets one
            from agentadapter.service.compliance import purge_by_policy

            return await purge_by_policy(db, default_days=period, dry_run=dry_run)
        return await purge(db, older_than=cutoff, dry_run=dry_run)

    report = with_database(work)
    verb = "would delete" if dry_run else "deleted"
    # The sentence is printed apart from the table, so that it reaches a pipe too.
    out.print(f"{verb} (older than {report.cutoff.isoformat(timespec='seconds')}):", markup=False)
    show_table(out, [Column("table"), Column("rows", numeric=True)],
               [[name, str(count)] for name, count in report.counts.items()])
    if dry_run:
        out.print("dry run: nothing was deleted")


def tenants_export(
    name: Annotated[str, typer.Argument(help="the tenant's name")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file (default: stdout)")]
    = None,
) -> None:
    """Export a tenant's data as JSON (provider keys as metadata only: never their ciphertext)."""
    from agentadapter.service.common import Caller
    from agentadapter.service.tenants import record_export
    from agentadapter.store.export import export_tenant

    async def work(db: Database) -> int:
        async with db.writer() as session:
            tenant_id = await find_tenant_id(session, name)
            await record_export(session, Caller.system(tenant_id), {"output": str(output) if output else "stdout"})
        written = 0
        sink = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            async for chunk in export_tenant(db, tenant_id):
                sink.write(chunk)
                written += len(chunk)
        finally:
            if output:
                sink.close()
            else:
                sink.flush()
        return written

    written = with_database(work)
    if output:
        err.print(f"exported tenant {name} to {output} ({written:,} characters)")
