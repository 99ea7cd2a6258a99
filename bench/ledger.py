"""No usage record lost: gateway calls in bursts at concurrency 64, a clean shutdown, then calls answered
against ``usage_records`` rows written - on SQLite and on PostgreSQL.

One run per database: the loopback OpenAI-format provider (``bench/_loopback.py``, its own process),
``agentadapter serve`` (one process, a fresh database, a tenant and a key made with the CLI, the ledger
journal in the data dir), then ``--calls`` chat completions through the gateway in bursts of
``--burst`` at concurrency 64 (the aiohttp load generator of ``bench/gateway.py``, two client
processes), with a pause between bursts. Before shutting down, the server's ``/metrics`` give the
writer's backlog high-water mark and what it spilled to the journal; after a SIGTERM (a clean
shutdown: the writer drains), the rows are counted.

    .venv/bin/python bench/ledger.py [--calls 200000] [--burst 20000] [--databases sqlite,postgres]

PostgreSQL: a throw-away database on AGENTADAPTER_BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), created and dropped by the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _loopback import loopback_server
from _serve import clean_env, serve, tenant_key
from gateway import MODEL, run_load

POSTGRES = os.environ.get("AGENTADAPTER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Outcome:
    database: str
    answered: int
    errors: int
    written: int
    high_water: float
    spilled: float
    seconds: float

    @property
    def lost(self) -> int:
        return self.answered - self.written


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _count(database_url: str) -> int:
    import sqlalchemy as sa

    from agentadapter.store.database import Database
    from agentadapter.store.models import UsageRecord

    db = Database(database_url)
    try:
        async with db.session() as session:
            return int(await session.scalar(sa.select(sa.func.count()).select_from(UsageRecord)
                                            .where(UsageRecord.source == "gateway")) or 0)
    finally:
        await db.dispose()


def one_database(kind: str, provider_url: str, calls: int, burst: int) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix=f"aa-bench-ledger-{kind}-"))
    extra = {"OPENAI_BASE_URL": provider_url, "OPENAI_API_KEY": "sk-bench"}
    dropped = None
    if kind == "postgres":
        name = f"aa_bench_ledger_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin(POSTGRES, f'CREATE DATABASE "{name}"'))
        dropped = name
        extra["AGENTADAPTER_DATABASE_URL"] = POSTGRES.rsplit("/", 1)[0] + "/" + name
    try:
        env = clean_env(workdir, drop=("AGENTADAPTER_", "OPENAI_"), **extra)
        key = tenant_key(env, "member")
        process, base_url = serve(env, workdir, name=f"the gateway ({kind})")
        answered = errors = 0
        started = time.perf_counter()
        try:
            while answered + errors < calls:
                load = run_load(base_url + "/v1", key, MODEL, 64, requests=min(burst, calls - answered - errors))
                answered += load.requests - load.errors
                errors += load.errors
                print(f"{kind}: {answered + errors:,} calls ({load.rps:,.0f} req/s in this burst)", file=sys.stderr)
                time.sleep(1.0)  # a pause between bursts, as traffic has
            seconds = time.perf_counter() - started
            scraped = httpx.get(base_url + "/metrics", timeout=10).text
        finally:
            process.terminate()  # SIGTERM: uvicorn's clean shutdown, the writer drains
            process.wait(120)
        database_url = extra.get("AGENTADAPTER_DATABASE_URL") or f"sqlite:///{workdir / 'agentadapter.db'}"
        written = asyncio.run(_count(database_url))
        return Outcome(kind, answered, errors, written, metric(scraped, "agentadapter_ledger_backlog_high_water"),
                       metric(scraped, "agentadapter_ledger_spilled_total"), seconds)
    finally:
        if dropped is not None:
            asyncio.run(_admin(POSTGRES, f'DROP DATABASE IF EXISTS "{dropped}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


def report(outcomes: list[Outcome]) -> str:
    lines = [
        f"Loopback, {os.cpu_count()} CPUs, one gateway process, concurrency 64 in bursts, then a clean shutdown.",
        "",
        "| database | calls answered | records written | lost | backlog high-water | spilled to the journal "
        "| calls/s | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(f"| {o.database} | {o.answered:,} | {o.written:,} | {o.lost:,} | {o.high_water:,.0f} | "
                     f"{o.spilled:,.0f} | {o.answered / o.seconds:,.0f} | {o.errors:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    outcomes = []
    with loopback_server() as provider_url:
        for kind in args.databases.split(","):
            outcomes.append(one_database(kind.strip(), provider_url, args.calls, args.burst))
    print(report(outcomes))
    if any(o.lost for o in outcomes):
        raise SystemExit("records were lost")


if __name__ == "__main__":
    main()
