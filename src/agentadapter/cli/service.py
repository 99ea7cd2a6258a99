"""The service's commands: ``serve``, ``db upgrade|downgrade|current|revision``, ``tenants``, ``keys``.

``agentadapter serve`` migrates the database, then runs the FastAPI app under uvicorn (one process,
or ``--workers N`` when ``AGENTADAPTER_REDIS_URL`` is set, since several processes share events,
cancellation and limits only through Redis); on SIGTERM it drains (``/readyz`` 503, then in-flight
requests and runs get ``AGENTADAPTER_SHUTDOWN_GRACE_S``: :mod:`agentadapter.server.drain`).
``agentadapter db ...`` runs the Alembic migrations.
``agentadapter tenants create NAME`` and ``agentadapter keys create --tenant NAME`` bootstrap
access: the key is printed once, on stdout alone (``KEY=$(agentadapter keys create --tenant acme)``),
and only its SHA-256 is stored. Every command but ``db downgrade`` migrates the database first, so
they work on a fresh data dir. Exit codes: 0 ok, 2 a usage or configuration error, 1 a failure.
``register(app)`` adds the commands to a typer app; the helpers they share are in
:mod:`agentadapter.cli.common`.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentadapter.cli.common import EXIT_USAGE, err, fail, find_tenant_id, out, with_database
from agentadapter.cli.tables import Column, show_table
from agentadapter.llm.errors import ConfigurationError

if TYPE_CHECKING:
    from agentadapter.store.database import Database

__all__ = ["register"]

db_app = typer.Typer(name="db", help="Database migrations (Alembic).", no_args_is_help=True)
tenants_app = typer.Typer(name="tenants", help="Tenants: create and list.", no_args_is_help=True)
keys_app = typer.Typer(name="keys", help="Tenant API keys: create, list, revoke.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``db``, ``tenants`` and ``keys`` to ``app``."""
    from agentadapter.cli import compliance, credits, data, secrets

    data.register(db_app, tenants_app)
    app.command("serve")(serve)
    app.add_typer(db_app)
    app.add_typer(tenants_app)
    app.add_typer(keys_app)
    secrets.register(app)  # provider-keys, secrets
    credits.register(app)  # credits add, credits show
    compliance.register(app)  # compliance report, erase, run-due


# ------------------------------------------------------------------------------------------- serve


def serve(
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0 for every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="server processes (more than 1 needs Redis)")] = 1,
    migrate: Annotated[bool, typer.Option("--migrate/--no-migrate", help="migrate the database first")] = True,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="log every request")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "info",
    ready_file: Annotated[Path | None, typer.Option(
        "--ready-file",
        help="write the server's URL to this file once /readyz answers 200 (a script waits for the file); "
             "removed when the server stops")] = None,
) -> None:
    """Serve the REST API (docs at /docs): migrate the database, then run uvicorn."""
    from agentadapter.config import get_settings
    from agentadapter.server.settings import ServerSettings, check_secrets

    try:
        settings = get_settings()
        check_secrets(settings)
        grace_s = ServerSettings().shutdown_grace_s
    except ConfigurationError as error:
        raise fail(str(error), EXIT_USAGE) from None
    except ValueError as error:  # pydantic's ValidationError: a malformed AGENTADAPTER_SHUTDOWN_* and the like
        raise fail(f"the server's settings are invalid: {error}", EXIT_USAGE) from None
    if workers > 1 and not settings.redis_url:
        raise fail(
            f"--workers {workers} needs Redis: several server processes share run events, cancellation and limits "
            "through it. Set AGENTADAPTER_REDIS_URL (e.g. redis://127.0.0.1:6379/0), or serve with one worker",
            EXIT_USAGE)
    if migrate:
        # In a process of its own, so that the server's processes never load Alembic; they only
        # check that the database is at the newest revision.
        import subprocess

        done = subprocess.run([sys.executable, "-m", "agentadapter.cli", "db", "upgrade"], check=False)
        if done.returncode != 0:
            raise typer.Exit(done.returncode)
        os.environ["AGENTADAPTER_MIGRATE_ON_START"] = "false"
    import uvicorn

    err.print(f"serving on http://{host}:{port} (API docs at http://{host}:{port}/docs)")
    stopped = threading.Event()
    if ready_file is not None:
        ready_file.unlink(missing_ok=True)  # a file left by an earlier server must not read as ready
        # uvicorn stops gracefully on SIGTERM, then raises the signal again with the handler it found:
        # ours turns it into an exit (status 143) that lets the file be removed on the way out.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        threading.Thread(target=_announce_ready, args=(host, port, ready_file, stopped), daemon=True,
                         name="ready-file").start()
    try:
        uvicorn.run("agentadapter.server.app:create_app", factory=True, host=host, port=port, workers=workers,
                    access_log=access_log, log_level=log_level, server_header=False, proxy_headers=True,
                    # On SIGTERM open requests and SSE streams get this long once the listener is closed (the
                    # app ends its streams at once and drains: server/drain.py); what is left then is cancelled.
                    timeout_graceful_shutdown=math.ceil(grace_s))
    finally:
        stopped.set()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _announce_ready(host: str, port: int, ready_file: Path, stopped: threading.Event) -> None:
    """Ask ``/readyz`` until it answers 200, then write the base URL to ``ready_file`` (atomically)."""
    import urllib.error
    import urllib.request

    # An address that listens everywhere is reached on loopback; an IPv6 one needs its brackets.
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    base = f"http://[{probe_host}]:{port}" if ":" in probe_host else f"http://{probe_host}:{port}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    while not stopped.wait(0.1):
        try:
            with direct.open(f"{base}/readyz", timeout=2) as answer:
                if answer.status != 200:
                    continue
        except (urllib.error.URLError, OSError):
            continue  # not listening yet, or not ready (503)
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        partial = ready_file.with_name(ready_file.name + ".partial")
        partial.write_text(base + "\n", encoding="utf-8")
        partial.replace(ready_file)
        return


# ---------------------------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Migrate the database up (to the newest revision by default)."""
    from agentadapter.store import migrate

    reached = with_database(lambda db: migrate.upgrade(db, revision), migrate_first=False)
    out.print(f"database at revision {reached}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="target revision (-1: one step back; base: empty)")] = "-1",
) -> None:
    """Migrate the database down (one revision by default). Data in dropped tables is lost."""
    from agentadapter.store import migrate

    reached = with_database(lambda db: migrate.downgrade(db, revision), migrate_first=False)
    out.print(f"database at revision {reached or 'base (empty)'}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one."""
    from agentadapter.store import migrate

    async def work(db: Database) -> tuple[str, str | None]:
        return repr(db), await migrate.current(db)

    where, revision = with_database(work, migrate_first=False)
    newest = migrate.head()
    state = "up to date" if revision == newest else f"behind: run `agentadapter db upgrade` (newest is {newest})"
    out.print(f"{where}: revision {revision or 'none'} ({state})")


@db_app.command("revision")
def db_revision(message: Annotated[str, typer.Option("--message", "-m", help="what the revision changes")]) -> None:
    """Write a new migration autogenerated from the models (for developers; read it before committing)."""
    from agentadapter.store import migrate

    path = with_database(lambda db: migrate.revision(db, message))
    out.print(f"wrote {path}")


# ----------------------------------------------------------------------------------------- tenants


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="the tenant's name (unique)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the tenant as JSON")] = False,
) -> None:
    """Create a tenant with its default project, user and settings."""
    from agentadapter.service import tenants

    async def work(db: Database) -> dict[str, str]:
        async with db.writer() as session:
            tenant = await tenants.create_tenant(session, name)
            return {"id": str(tenant.id), "name": tenant.name}

    created = with_database(work)
    if as_json:
        sys.stdout.write(json.dumps(created) + "\n")
    else:
        out.print(f"created tenant {created['name']} ({created['id']})")
        err.print(f"next: agentadapter keys create --tenant {created['name']}")


@tenants_app.command("list")
def tenants_list(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List the tenants."""
    from agentadapter.store import tenants

    async def work(db: Database) -> list[dict[str, str]]:
        async with db.session() as session:
            return [{"id": str(t.id), "name": t.name, "created_at": t.created_at.isoformat()}
                    for t in await tenants.list_tenants(session)]

    rows = with_database(work)
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    show_table(out, [Column("name"), Column("id"), Column("created")],
               [[row["name"], row["id"], row["created_at"][:19]] for row in rows], title="Tenants")


# -------------------------------------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant's name")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "default",
    role: Annotated[str, typer.Option(help="admin, member or viewer")] = "admin",
    scope: Annotated[list[str] | None, typer.Option("--scope", help="limit it (runs:read ...); repeatable")] = None,
    expires_days: Annotated[float | None, typer.Option(
        "--expires-days", help="lifetime in days (more than 0; leave it out for a key that does not expire)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the key and its details as JSON")] = False,
) -> None:
    """Create an API key for a tenant and print it - once: only its hash is stored."""
    from agentadapter.store import api_keys
    from agentadapter.store.models import ROLES

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}", EXIT_USAGE)
    expires = None
    if expires_days is not None:  # 0 must not quietly mean "never expires"
        try:
            expires = api_keys.expiry_in(expires_days)
        except ValueError as exc:
            raise fail(f"--expires-days: {exc}", EXIT_USAGE) from exc

    from agentadapter.service import tenants
    from agentadapter.service.common import Caller

    async def work(db: Database) -> dict[str, Any]:
        async with db.writer() as session:
            caller = Caller.system(await find_tenant_id(session, tenant))
            row, key = await tenants.create_api_key(session, caller, name=name, role=role, scopes=scope or (),
                                                    expires_at=expires)
            return {"key": key, "id": str(row.id), "prefix": row.prefix, "tenant": tenant, "role": row.role,
                    "scopes": row.scopes, "expires_at": expires.isoformat() if expires else None}

    created = with_database(work)
    if as_json:
        sys.stdout.write(json.dumps(created) + "\n")
        return
    sys.stdout.write(created["key"] + "\n")
    err.print(f"API key {created['prefix']}... for tenant {tenant} (role {role}); it is shown only this once - "
              "send it as 'Authorization: Bearer <key>'")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant's name")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List a tenant's keys (prefixes only; keys are never stored)."""
    from agentadapter.store import api_keys

    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.session() as session:
            rows = await api_keys.list_api_keys(session, await find_tenant_id(session, tenant))
            return [{"id": str(r.id), "prefix": r.prefix, "name": r.name, "role": r.role, "scopes": r.scopes,
                     "created_at": r.created_at.isoformat(),
                     "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                     "revoked": r.revoked_at is not None} for r in rows]

    rows = with_database(work)
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    show_table(
        out,
        [Column("prefix"), Column("name"), Column("role"), Column("scopes"), Column("last used"), Column("state"),
         Column("id")],
        [[row["prefix"] + "...", row["name"], row["role"], ",".join(row["scopes"]) or "-",
          (row["last_used_at"] or "-")[:19], "revoked" if row["revoked"] else "active", row["id"]] for row in rows],
        title=f"API keys of {tenant}",
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id or prefix (from keys list)")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant's name")],
) -> None:
    """Revoke a key (servers stop accepting it within AGENTADAPTER_AUTH_CACHE_S seconds)."""
    import uuid

    from agentadapter.service import tenants
    from agentadapter.service.common import Caller
    from agentadapter.store import api_keys

    async def work(db: Database) -> str:
        async with db.writer() as session:
            tenant_id = await find_tenant_id(session, tenant)
            rows = await api_keys.list_api_keys(session, tenant_id)
            matches = [r for r in rows if str(r.id) == key_id or r.prefix == key_id.rstrip(".")]
            if len(matches) != 1:
                raise ValueError(f"{key_id!r} matches {len(matches)} keys of {tenant}; give the key's id")
            row = await tenants.revoke_api_key(session, Caller.system(tenant_id), uuid.UUID(str(matches[0].id)))
            return row.prefix

    prefix = with_database(work)
    out.print(f"revoked {prefix}...")
