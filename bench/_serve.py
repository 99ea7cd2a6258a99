"""Starting ``agentadapter serve`` for a benchmark: a free port, the CLI in a clean environment, a tenant
and its key, and the wait until ``/healthz`` answers. Shared by the benchmarks that load a real server
process (``api_load.py``, ``gateway.py``, ``hostile_bodies.py``)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "agentadapter.cli"]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The PostgreSQL server benchmarks make their throw-away databases on (AGENTADAPTER_BENCH_POSTGRES_URL
overrides it; the database it names is only used to create and drop theirs)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run([*CLI, *args], env=dict(env), cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`agentadapter {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def clean_env(workdir: Path, *, drop: tuple[str, ...] = ("AGENTADAPTER_",), **extra: str) -> dict[str, str]:
    """The caller's environment without the service's settings, on a data dir of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(AGENTADAPTER_DATA_DIR=str(workdir), AGENTADAPTER_ENV="development", PYTHONUNBUFFERED="1", **extra)
    return env


def tenant_key(env: Mapping[str, str], role: str = "admin") -> str:
    """A tenant ``bench`` and an API key of ``role`` for it, made with the CLI."""
    cli(env, "tenants", "create", "bench")
    return cli(env, "keys", "create", "--tenant", "bench", "--role", role)


def serve(env: Mapping[str, str], workdir: Path, *, workers: int = 1, name: str = "the server",
          cwd: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``agentadapter serve`` on a free port, once ``/healthz`` answers: the process and its base URL."""
    port = free_port()
    log = workdir / "server.log"
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
        env=dict(env), cwd=cwd or workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited at start: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1.0).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{name} did not answer /healthz within 60 s")


async def pg_database(admin_url: str, name: str, *, create: bool) -> None:
    """Create (or drop, with whatever is still connected to it) the database ``name``."""
    import asyncpg

    connection = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        if create:
            await connection.execute(f'CREATE DATABASE "{name}"')
        else:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@contextmanager
def database_url(kind: str) -> Iterator[str | None]:
    """The URL the server should use: None for its default SQLite file, or a throw-away PostgreSQL
    database (dropped afterwards)."""
    if kind == "sqlite":
        yield None
        return
    admin = os.environ.get("AGENTADAPTER_BENCH_POSTGRES_URL", DEFAULT_PG)
    name = f"aa_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_database(admin, name, create=True))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(pg_database(admin, name, create=False))
