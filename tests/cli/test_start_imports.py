"""The operator's commands load only what they use, so that they start fast on a migrated database.

Each command runs in a fresh interpreter (as ``agentadapter ...`` would) against a migrated SQLite
file and reports the modules it imported: a database command loads neither the web server nor the
HTTP clients nor the workflow runner, Alembic is not loaded when the database is at the newest
revision already, and ``--version`` loads no database code at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.store.databases import migrated_sqlite

# Runs main() with the given arguments, then writes sys.modules to the file named first.
_REPORT = """
import json, sys
report, sys.argv = sys.argv[1], ["agentadapter", *sys.argv[2:]]
from agentadapter.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
with open(report, "w") as out:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, out)
"""

# What a database command has no use for: the server and its stack, HTTP clients, model runners,
# the migration machinery, the workflow runner and the agents.
NOT_FOR_DATABASE_COMMANDS = (
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "aiohttp",
    "torch",
    "transformers",
    "alembic",
    "celery",
    "agentadapter.server",
    "agentadapter.llm.client",
    "agentadapter.orchestrator",
    "agentadapter.agents",
    "agentadapter.cli.run",
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli-data")
    migrated_sqlite(directory, tmp_path_factory.mktemp("template"))  # agentadapter.db, the default file
    _imported(directory, tmp_path_factory.mktemp("report"), "tenants", "create", "start-imports")
    return directory


def _imported(data_dir: Path, tmp_path: Path, *args: str) -> set[str]:
    report = tmp_path / "modules.json"
    env = {**os.environ, "AGENTADAPTER_DATA_DIR": str(data_dir), "AGENTADAPTER_ENV": "development"}
    env.pop("AGENTADAPTER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", _REPORT, str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(report.read_text())
    assert answer["exit"] in (0, None), done.stderr
    return set(answer["modules"])


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == name or m.startswith(name + ".") for name in names))


@pytest.mark.parametrize(
    "args",
    [
        ("tenants", "list"),
        ("tenants", "create", "start-imports-2"),
        ("keys", "list", "--tenant", "start-imports"),
        ("credits", "show", "--tenant", "start-imports"),
        ("provider-keys", "list", "--tenant", "start-imports"),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_database_command_loads_no_server_client_runner_or_alembic(
    data_dir: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    modules = _imported(data_dir, tmp_path, *args)
    assert "sqlalchemy" in modules  # it did reach the database
    assert _loaded(modules, NOT_FOR_DATABASE_COMMANDS) == []


def test_version_loads_no_database_code_nor_other_commands(data_dir: Path, tmp_path: Path) -> None:
    modules = _imported(data_dir, tmp_path, "--version")
    assert (
        _loaded(
            modules,
            (
                "sqlalchemy",
                "pydantic_settings",
                "agentadapter.store",
                "agentadapter.cli.service",
                "agentadapter.cli.run",
                "agentadapter.cli.evals",
            ),
        )
        == []
    )
