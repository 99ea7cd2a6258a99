"""Tenants' provider keys and the server's secret key from the command line.

``agentadapter provider-keys set|list|delete --tenant NAME`` store, show (hints only) and delete a
tenant's provider keys, as ``/v1/provider-keys`` does; ``set`` reads the key from stdin when it is
piped (``agentadapter provider-keys set -t acme -p openai < key.txt``) or from a hidden prompt,
never from the command line, where it would stay in the shell's history and the process list.
``agentadapter secrets generate`` prints a new Fernet key for ``AGENTADAPTER_SECRET_KEY``;
``agentadapter secrets reencrypt`` encrypts every stored key anew with the newest one (after a new
key was put in front of the old). A server that is running picks up a change made here within
``AGENTADAPTER_AUTH_CACHE_S`` seconds. Exit codes are those of :mod:`agentadapter.cli.common`.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentadapter.cli.common import EXIT_USAGE, err, fail, find_tenant_id, out, with_database
from agentadapter.cli.tables import Column, show_table
from agentadapter.llm.errors import ConfigurationError

if TYPE_CHECKING:
    from agentadapter.store.database import Database
    from agentadapter.store.models import ProviderKey

__all__ = ["register"]

provider_keys_app = typer.Typer(name="provider-keys", help="Tenants' provider API keys (stored encrypted).",
                                no_args_is_help=True)
secrets_app = typer.Typer(name="secrets", help="The server's secret key: generate one, re-encrypt with it.",
                          no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="the tenant's name")]
ProviderOption = Annotated[str, typer.Option("--provider", "-p", help="a provider preset: openai, anthropic, ...")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="the key's name (the `default` one is used)")]


def register(app: typer.Typer) -> None:
    """Add ``provider-keys`` and ``secrets`` to ``app``."""
    app.add_typer(provider_keys_app)
    app.add_typer(secrets_app)


def _box() -> Any:
    from agentadapter.config import get_settings
    from agentadapter.store.secrets import SecretBox

    try:
        return SecretBox.from_setting(get_settings().secret_key)
    except (ConfigurationError, ValueError) as error:  # ValueError: the settings themselves do not validate
        raise fail(str(error), EXIT_USAGE) from None


def _read_key(provider: str) -> str:
    if sys.stdin is not None and not sys.stdin.isatty():
        key = sys.stdin.readline()
    else:
        key = typer.prompt(f"{provider} API key", hide_input=True, err=True)
    if not key.strip():
        raise fail("no key given: pipe it on stdin or type it at the prompt", EXIT_USAGE)
    return key


def _public(row: ProviderKey) -> dict[str, Any]:
    from agentadapter.store.provider_keys import env_var

    return {"id": str(row.id), "provider": row.provider, "name": row.name, "hint": "..." + row.hint,
            "env_var": env_var(row.provider), "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "rotated_at": row.rotated_at.isoformat() if row.rotated_at else None}


@provider_keys_app.command("set")
def provider_keys_set(tenant: TenantOption, provider: ProviderOption, name: NameOption = "default") -> None:
    """Store a tenant's key for a provider (read from stdin or a hidden prompt); replaces one of that name."""
    from agentadapter.service import provider_keys as service
    from agentadapter.service.common import Caller
    from agentadapter.store import provider_keys

    box = _box()  # an unusable secret key or provider is reported before the key is asked for
    try:
        provider_keys.provider_name(provider)
    except ValueError as error:
        raise fail(str(error), EXIT_USAGE) from None
    key = _read_key(provider)

    async def work(db: Database) -> tuple[str, dict[str, Any]]:
        async with db.writer() as session:
            tenant_id = await find_tenant_id(session, tenant)
            action, row = await service.set_key(session, box, Caller.system(tenant_id), provider=provider, key=key,
                                                name=name)
            return action, _public(row)

    action, row = with_database(work)
    verb = "stored" if action == "create" else "replaced"
    out.print(f"{verb} {row['provider']} key {row['name']!r} ({row['hint']}) for tenant {tenant}; "
              f"its calls use it as {row['env_var']}")


@provider_keys_app.command("list")
def provider_keys_list(
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List a tenant's provider keys (hints only)."""
    from agentadapter.store import provider_keys

    async def work(db: Database) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with db.session() as session:
            tenant_id = await find_tenant_id(session, tenant)
            cursor: str | None = None
            while True:
                page = await provider_keys.list_provider_keys(session, tenant_id, limit=100, cursor=cursor)
                rows.extend(_public(r) for r in page.items)
                if page.next_cursor is None:
                    return rows
                cursor = page.next_cursor

    rows = with_database(work)
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    show_table(
        out,
        [Column("provider"), Column("name"), Column("key"), Column("variable"), Column("updated"), Column("id")],
        [[row["provider"], row["name"], row["hint"], row["env_var"], row["updated_at"][:19], row["id"]]
         for row in rows],
        title=f"Provider keys of {tenant}",
    )


@provider_keys_app.command("delete")
def provider_keys_delete(tenant: TenantOption, provider: ProviderOption, name: NameOption = "default") -> None:
    """Delete a tenant's key; its calls fall back to the server's own key for that provider."""
    from agentadapter.service import provider_keys as service
    from agentadapter.service.common import Caller

    async def work(db: Database) -> dict[str, Any]:
        async with db.writer() as session:
            tenant_id = await find_tenant_id(session, tenant)
            row = await service.delete_named_key(session, Caller.system(tenant_id), provider, name)
            if row is None:
                raise ValueError(f"tenant {tenant} has no {provider} key named {name!r}; "
                                 f"`agentadapter provider-keys list -t {tenant}` shows its keys")
            return _public(row)

    row = with_database(work)
    out.print(f"deleted {row['provider']} key {row['name']!r} ({row['hint']}) of tenant {tenant}")


@secrets_app.command("generate")
def secrets_generate() -> None:
    """Print a new Fernet key for AGENTADAPTER_SECRET_KEY (put it first; keep the old ones after it)."""
    from agentadapter.store.secrets import generate_key

    sys.stdout.write(generate_key() + "\n")
    err.print("set AGENTADAPTER_SECRET_KEY=<this key>[,<previous keys>], restart the servers, then run "
              "`agentadapter secrets reencrypt`")


@secrets_app.command("reencrypt")
def secrets_reencrypt() -> None:
    """Encrypt every stored provider key anew with the newest key of AGENTADAPTER_SECRET_KEY."""
    from agentadapter.store import provider_keys

    box = _box()

    async def work(db: Database) -> int:
        async with db.writer() as session:
            return await provider_keys.reencrypt_all(session, box)

    count = with_database(work)
    sys.stdout.write(f"{count}\n")
    err.print(f"re-encrypted {count} provider key(s) with the newest secret key; the older keys can now be "
              "removed from AGENTADAPTER_SECRET_KEY")
