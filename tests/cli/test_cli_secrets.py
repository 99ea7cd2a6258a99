"""The CLI prints connection URLs with their passwords masked: ``cluster up``, ``backends``, ``db`` errors."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from typer.testing import CliRunner

from agentadapter.cli import app
from agentadapter.cli import cluster as cli_cluster
from agentadapter.config import get_settings

runner = CliRunner()
PASSWORD = "pw-" + secrets.token_hex(8)


def test_cluster_up_banner_masks_every_password_and_the_children_get_the_real_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def create_database(url: str) -> None:
        seen["created"] = url

    async def supervise(commands: dict[str, list[str]], env: dict[str, str]) -> int:
        seen["env"] = env
        return 0

    # Everything but the printing: no database is touched and no process started.
    monkeypatch.setattr(cli_cluster, "_create_database", create_database)
    monkeypatch.setattr(cli_cluster, "_run_once", lambda command, env: 0)
    monkeypatch.setattr(cli_cluster, "_supervise", supervise)
    database = f"postgresql://app:{PASSWORD}@db.internal:5432/agentadapter"
    redis = f"redis://:{PASSWORD}@cache.internal:6379/0"
    broker = f"amqp://worker:{PASSWORD}@rabbit.internal:5672/jobs"
    result = runner.invoke(app, ["cluster", "up", "--workers", "1", "--database-url", database,
                                 "--redis-url", redis, "--broker-url", broker])
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert "database postgresql://app:***@db.internal:5432/agentadapter" in result.output
    assert "broker amqp://worker:***@rabbit.internal:5672/jobs" in result.output
    assert seen["created"] == database
    assert (seen["env"]["AGENTADAPTER_DATABASE_URL"], seen["env"]["AGENTADAPTER_REDIS_URL"],
            seen["env"]["AGENTADAPTER_BROKER_URL"]) == (database, redis, broker)


def test_cluster_up_errors_mask_the_url_they_name() -> None:
    wrong = runner.invoke(app, ["cluster", "up", "--database-url", f"mysql://app:{PASSWORD}@db/agentadapter"])
    assert wrong.exit_code == 2
    assert PASSWORD not in wrong.output and "mysql://app:***@db/agentadapter" in wrong.output
    # Port 1 on loopback refuses at once: the database cannot be prepared.
    unreachable = runner.invoke(app, ["cluster", "up", "--database-url",
                                      f"postgresql://app:{PASSWORD}@127.0.0.1:1/agentadapter"])
    assert unreachable.exit_code == 1
    assert PASSWORD not in unreachable.output
    assert "cannot prepare the database postgresql://app:***@127.0.0.1:1/agentadapter" in unreachable.output


def test_backends_mask_a_base_url_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"https://team:{PASSWORD}@proxy.internal/v1")
    table = runner.invoke(app, ["backends"], env={"COLUMNS": "400"})  # one line per backend
    assert table.exit_code == 0, table.output
    assert PASSWORD not in table.output and "https://team:***@proxy.internal/v1" in table.output
    as_json = runner.invoke(app, ["backends", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert PASSWORD not in as_json.stdout
    rows = {row["provider"]: row for row in json.loads(as_json.stdout)}
    assert rows["openai"]["base_url"] == "https://team:***@proxy.internal/v1"
    assert rows["anthropic"]["base_url"] == "https://api.anthropic.com"  # no credentials: unchanged


# Ids name the case, not the URL: the password differs in each process, and pytest-xdist's workers must
# collect the same tests.
@pytest.mark.parametrize("url_template", [
    "postgresql://app:{password}@127.0.0.1:1/agentadapter",  # unreachable
    "postgresql//app:{password}@db.internal/agentadapter",  # mistyped: quoted back by the error
], ids=["unreachable", "mistyped"])
def test_db_commands_mask_the_url_in_their_errors(url_template: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTADAPTER_DATABASE_URL", url_template.format(password=PASSWORD))
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["db", "current"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0 and "error:" in result.output
    assert PASSWORD not in result.output
