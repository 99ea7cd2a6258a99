"""``agentadapter credits add|show``: a tenant's prepaid balance, from the operator's command line.

``credits add --tenant NAME AMOUNT`` grants USD (opening the tenant's account on the first grant,
after which its LLM calls draw on the balance); ``credits show --tenant NAME`` prints the balance,
what calls in progress hold, and the recent grants and charges. Both are written to the tenant's
audit log with the actor ``cli``. Running servers meter a newly funded tenant within
``AGENTADAPTER_AUTH_CACHE_S`` seconds. Registered by :func:`agentadapter.cli.service.register`.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentadapter.cli.common import EXIT_USAGE, err, fail, find_tenant_id, out, with_database
from agentadapter.cli.tables import Column, show_table

if TYPE_CHECKING:
    from agentadapter.store.database import Database

__all__ = ["credits_app", "register"]

credits_app = typer.Typer(name="credits", help="Tenant credits: add, show.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``credits`` to ``app``."""
    app.add_typer(credits_app)


@credits_app.command("add")
def credits_add(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant's name")],
    amount: Annotated[float | None, typer.Argument(help="USD to add", show_default=False)] = None,
    usd: Annotated[float | None, typer.Option("--usd", help="USD to add (instead of AMOUNT)")] = None,
    note: Annotated[str, typer.Option("--note", help="why: an invoice number, a note")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="print the grant as JSON")] = False,
) -> None:
    """Grant a tenant credits (USD); its LLM calls then draw on the balance."""
    from agentadapter.service.common import Caller
    from agentadapter.service.credits import grant_credits

    if (amount is None) == (usd is None):
        raise fail("give the amount once: `agentadapter credits add --tenant NAME 25` (or --usd 25)", EXIT_USAGE)
    value: float = amount if amount is not None else (usd or 0.0)

    async def work(db: Database) -> dict[str, Any]:
        async with db.writer() as session:
            tenant_id = await find_tenant_id(session, tenant)
            granted = await grant_credits(session, Caller.system(tenant_id), value, note)
            entry = granted.transaction
            return {"tenant": tenant, "tenant_id": str(tenant_id), "transaction_id": str(entry.id),
                    "amount_usd": value, "balance_usd": entry.balance_after_usd}

    granted = with_database(work)
    if as_json:
        sys.stdout.write(json.dumps(granted) + "\n")
        return
    out.print(f"added ${value:,.2f} to {tenant}: the balance is ${granted['balance_usd']:,.6f}")
    err.print("running servers meter the tenant's calls from its next facade refresh (AGENTADAPTER_AUTH_CACHE_S)")


@credits_app.command("show")
def credits_show(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant's name")],
    limit: Annotated[int, typer.Option(min=0, max=100, help="recent transactions to list")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a tenant's balance, what calls in progress hold, and its recent grants and charges."""
    from agentadapter.service.common import Caller, record
    from agentadapter.store import credits

    async def work(db: Database) -> dict[str, Any]:
        async with db.writer() as session:  # a writer: reading credits is audited
            tenant_id = await find_tenant_id(session, tenant)
            account = await credits.account(session, tenant_id)
            page = await credits.transactions(session, tenant_id, limit=limit) if account and limit else None
            await record(session, Caller.system(tenant_id), "credits.read", "credits", None,
                         {"metered": account is not None})
            balance = account.balance_usd if account else 0.0
            reserved = account.reserved_usd if account else 0.0
            return {
                "tenant": tenant, "tenant_id": str(tenant_id), "metered": account is not None,
                "balance_usd": balance, "reserved_usd": reserved, "available_usd": balance - reserved,
                "transactions": [
                    {"id": str(t.id), "kind": t.kind, "amount_usd": t.amount_usd,
                     "balance_after_usd": t.balance_after_usd, "description": t.description, "actor": t.actor,
                     "reservation_id": str(t.reservation_id) if t.reservation_id else None,
                     "created_at": t.created_at.isoformat()}
                    for t in (page.items if page else [])
                ],
            }

    shown = with_database(work)
    if as_json:
        sys.stdout.write(json.dumps(shown) + "\n")
        return
    if not shown["metered"]:
        out.print(f"{tenant} has no credit account: its calls are not metered (unless the server sets "
                  f"AGENTADAPTER_CREDITS_REQUIRED=true). Fund it with `agentadapter credits add --tenant {tenant} "
                  "AMOUNT`")
        return
    out.print(f"{tenant}: balance ${shown['balance_usd']:,.6f}, reserved ${shown['reserved_usd']:,.6f}, "
              f"available ${shown['available_usd']:,.6f}")
    if shown["transactions"]:
        show_table(
            out,
            [Column("when"), Column("kind"), Column("amount", numeric=True), Column("balance after", numeric=True),
             Column("by"), Column("note")],
            [[row["created_at"][:19], row["kind"], f"{row['amount_usd']:+,.6f}", f"{row['balance_after_usd']:,.6f}",
              row["actor"] or "-", row["description"] or "-"] for row in shown["transactions"]],
            title="Recent transactions",
        )
