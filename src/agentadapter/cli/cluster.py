"""``agentadapter cluster up``: the distributed mode on one machine, for trying it out.

It starts one API server (``agentadapter serve`` with ``AGENTADAPTER_EXECUTOR=celery``) and N Celery
workers (``agentadapter worker``) as child processes against a PostgreSQL database and Redis
(the local ones unless told otherwise), prefixes each child's output with its name, and stops
them all on Ctrl-C / SIGTERM or as soon as one of them exits (a cluster missing a part is not the
cluster asked for). The database is created if it does not exist and migrated once before any
child starts. Production runs these processes under a supervisor instead (docs/operations.md).
Every URL it prints has its password masked (``postgresql://user:***@host/db``): terminal output
ends up in scrollback, CI logs and screenshots.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Annotated

import typer
from rich.markup import escape

from agentadapter.cli.common import EXIT_FAILED, EXIT_USAGE, EXTRA_OF_MODULE, err
from agentadapter.observability.redact import mask_url, redact_text

__all__ = ["cluster_app"]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/agentadapter"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")

cluster_app = typer.Typer(name="cluster", help="Run the API and Celery workers together on this machine.",
                          no_args_is_help=True)


@cluster_app.command("up")
def cluster_up(
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes to start")] = 2,
    concurrency: Annotated[int, typer.Option(min=1, help="tasks each worker runs at once")] = 4,
    host: Annotated[str, typer.Option(help="address the API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port the API listens on")] = 8000,
    database_url: Annotated[str | None, typer.Option(
        help=f"PostgreSQL URL (default: AGENTADAPTER_DATABASE_URL, else {DEFAULT_DATABASE_URL})")] = None,
    redis_url: Annotated[str | None, typer.Option(
        help=f"Redis URL (default: AGENTADAPTER_REDIS_URL, else {DEFAULT_REDIS_URL})")] = None,
    broker_url: Annotated[str | None, typer.Option(
        help="Celery broker URL, Redis or amqp:// (default: AGENTADAPTER_BROKER_URL, else the Redis URL)")] = None,
    worker_name: Annotated[str, typer.Option(
        help="Celery node name prefix: workers are <prefix>1@<host>, <prefix>2@<host>, ... Node names must be "
             "unique on a broker, so give each cluster sharing one its own")] = "worker",
) -> None:
    """Start the API (Celery executor) and N workers against PostgreSQL and Redis; Ctrl-C stops them all."""
    database = database_url or os.environ.get("AGENTADAPTER_DATABASE_URL") or DEFAULT_DATABASE_URL
    redis = redis_url or os.environ.get("AGENTADAPTER_REDIS_URL") or DEFAULT_REDIS_URL
    broker = broker_url or os.environ.get("AGENTADAPTER_BROKER_URL") or redis
    if not database.startswith(("postgresql", "postgres:")):
        err.print(f"[bold red]error:[/] the cluster needs PostgreSQL (several processes write at once); "
                  f"{escape(repr(mask_url(database)))} is not a postgresql:// URL", markup=True)
        raise typer.Exit(EXIT_USAGE)
    env = {**os.environ, "AGENTADAPTER_DATABASE_URL": database, "AGENTADAPTER_REDIS_URL": redis,
           "AGENTADAPTER_BROKER_URL": broker, "AGENTADAPTER_EXECUTOR": "celery"}
    _require_extras()
    try:
        asyncio.run(_create_database(database))
    except Exception as error:  # unreachable server, refused login, ...
        err.print(f"[bold red]error:[/] cannot prepare the database {escape(mask_url(database))}: "
                  f"{type(error).__name__}: {escape(redact_text(str(error)))}. Is PostgreSQL running and the URL "
                  "right?", markup=True)
        raise typer.Exit(EXIT_FAILED) from None
    me = [sys.executable, "-m", "agentadapter.cli"]
    migrated = _run_once([*me, "db", "upgrade"], env)
    if migrated != 0:
        raise typer.Exit(migrated)
    commands = {"api": [*me, "serve", "--host", host, "--port", str(port), "--no-migrate", "--no-access-log"]}
    for index in range(1, workers + 1):
        commands[f"worker-{index}"] = [*me, "worker", "--concurrency", str(concurrency),
                                       "--hostname", f"{worker_name}{index}@%h"]
    err.print(f"cluster: API on http://{host}:{port}, {workers} worker(s) x {concurrency}; database "
              f"{mask_url(database)}, broker {mask_url(broker)}. Ctrl-C stops everything.")
    raise typer.Exit(asyncio.run(_supervise(commands, env)))


def _run_once(command: list[str], env: dict[str, str]) -> int:
    import subprocess

    return subprocess.run(command, env=env, check=False).returncode


def _require_extras() -> None:
    """Exit 2 naming the extras to install when the cluster's drivers are missing (./dev run installs none)."""
    import importlib.util

    missing = [module for module in ("asyncpg", "celery", "redis") if importlib.util.find_spec(module) is None]
    if not missing:
        return
    extras = [EXTRA_OF_MODULE[module] for module in missing]
    named = ", ".join(repr(extra) for extra in extras)
    what = f"the {named} extra, which is" if len(extras) == 1 else f"the {named} extras, which are"
    modules = ", ".join(repr(module) for module in missing)
    install = "pip install 'agentadapter[" + ",".join(extras) + "]'"
    err.print(f"[bold red]error:[/] the cluster needs {what} not installed (no module named {modules}): "
              f"{escape(install)}, or from a clone ./dev setup --all", markup=True, highlight=False)
    raise typer.Exit(EXIT_USAGE)


async def _create_database(url: str) -> None:
    """CREATE DATABASE when it does not exist (connecting to the server's ``postgres`` database)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or "agentadapter"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
            err.print(f"cluster: created database {name}")
    finally:
        await connection.close()


async def _supervise(commands: dict[str, list[str]], env: dict[str, str]) -> int:
    """Run the children, relay their output, stop them all when one exits or on a signal."""
    children: dict[str, asyncio.subprocess.Process] = {}
    relays: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for index, (name, command) in enumerate(commands.items()):
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
            children[name] = process
            assert process.stdout is not None
            relays.append(loop.create_task(_relay(name, _COLOURS[index % len(_COLOURS)], process.stdout)))
        exits = [loop.create_task(p.wait()) for p in children.values()]
        stopped = loop.create_task(stop.wait())
        done, _ = await asyncio.wait([*exits, stopped], return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if stopped not in done:
            name = next(n for n, p in children.items() if p.returncode is not None)
            code = children[name].returncode or EXIT_FAILED
            err.print(f"cluster: {name} exited with code {children[name].returncode}; stopping the others")
        stopped.cancel()
        return code
    finally:
        await _stop_all(children)
        for relay in relays:
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)


async def _relay(name: str, colour: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        text = escape(line.decode(errors="replace").rstrip())
        err.print(f"[{colour}]{name:>9}[/] | {text}", markup=True, highlight=False)


async def _stop_all(children: dict[str, asyncio.subprocess.Process], grace_s: float = 10.0) -> None:
    """SIGTERM every child (its whole process group: Celery's pool, uvicorn's workers), then SIGKILL stragglers."""
    running = [p for p in children.values() if p.returncode is None]
    for process in running:
        _signal_group(process, signal.SIGTERM)
    try:
        async with asyncio.timeout(grace_s):
            await asyncio.gather(*(p.wait() for p in running))
    except TimeoutError:
        for process in running:
            if process.returncode is None:
                _signal_group(process, signal.SIGKILL)
        await asyncio.gather(*(p.wait() for p in running))


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass  # it already ended
