"""The long fuzz run: every operation of the API's OpenAPI document, 10,000+ schemathesis cases per database.

The same driver as ``tests/server/test_fuzz_api.py`` (which runs a few hundred cases per database in
the suite): the app with the offline LLM (only ``test/...`` models answer) on a fresh SQLite file
and on a throw-away PostgreSQL database, a tenant admin key, seeded resources whose ids the fuzzer
puts in paths half the time, valid and invalid cases for each operation, random each run unless
``--seed`` is given. A case fails on a 5xx, or on a status, content type or body the document does
not declare. Prints a table (operations, cases, 5xx, violations, duration) per database and the
first findings of each kind; exits 1 when there is any.

    .venv/bin/python bench/fuzz_api.py [--db sqlite|postgres|both] [--cases 10000] [--seed N]

PostgreSQL comes from ``AGENTADAPTER_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/postgres,
used only to create and drop the throw-away database), as for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from agentadapter.server.app import create_app
from agentadapter.testing import offline_llm
from server.conftest import Api, make_settings, server_settings
from server.test_fuzz_api import SERVER_SETTINGS, FuzzReport, fuzz_api, seed
from store.databases import new_database_url


async def _operations_count(api: Api) -> int:
    document = (await api.client.get("/openapi.json")).json()
    return sum(len(ops) for ops in document["paths"].values())


async def run(database: str, cases: int, seed_value: int | None, console: Console) -> FuzzReport:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        templates = directory / "templates"
        templates.mkdir()
        url = new_database_url(database, directory, templates)
        llm = offline_llm()
        app = create_app(make_settings(url, directory), server_settings=server_settings(**SERVER_SETTINGS), llm=llm)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
                async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                    api = Api(app, client)
                    ids = await seed(api)
                    tenant = await api.tenant()
                    operations = await _operations_count(api)
                    # Valid and invalid cases per operation; a few operations have fewer distinct ones (none
                    # invalid without parameters), hence the margin.
                    per_operation = max(1, -(-cases * 6 // (5 * 2 * operations)))
                    console.print(f"[{database}] {operations} operations, up to {per_operation} valid and as many "
                                  "invalid cases each")

                    def progress(op: Any) -> None:
                        console.print(f"[{database}]   {op.label}: {op.cases} cases, {op.server_errors} 5xx, "
                                      f"{op.violations} violations", highlight=False)

                    return await asyncio.to_thread(
                        fuzz_api, api, asyncio.get_running_loop(), ids, headers=tenant.headers("admin"),
                        examples=per_operation, seed_value=seed_value or 0, derandomize=seed_value is not None,
                        progress=progress)
        finally:
            await llm.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--cases", type=int, default=10_000, help="cases per database (at least)")
    parser.add_argument("--seed", type=int, default=None, help="the same cases every run (default: random)")
    args = parser.parse_args()
    # The app logs each 5xx with its traceback; the table and the findings are what this reports.
    logging.getLogger("agentadapter").setLevel(logging.CRITICAL)
    console = Console()
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    reports = {db: asyncio.run(run(db, args.cases, args.seed, console)) for db in databases}
    table = Table(title="schemathesis over the whole API (tenant admin key, offline LLM)")
    for column in ("database", "operations", "cases", "5xx", "violations", "duration"):
        table.add_column(column, justify="left" if column == "database" else "right")
    for db, report in reports.items():
        table.add_row(db, str(len(report.operations)), f"{report.cases:,}", str(report.server_errors),
                      str(report.violations), f"{report.duration_s:.0f} s")
    console.print(table)
    failed = False
    for db, report in reports.items():
        if report.findings:
            failed = True
            console.print(f"[bold red]{db}: {len(report.findings)} finding(s)[/]")
            console.print(report.summary(), highlight=False, markup=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
