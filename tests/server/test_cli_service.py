"""``agentadapter serve | db | tenants | keys``: bootstrapping access from the command line."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from agentadapter.config import get_settings
from agentadapter.store import migrate


def test_tenants_and_keys_are_created_listed_and_revoked(cli: tuple[CliRunner, typer.Typer]) -> None:
    runner, app = cli
    created = runner.invoke(app, ["tenants", "create", "acme", "--json"])
    assert created.exit_code == 0, created.output
    tenant = json.loads(created.stdout)
    assert tenant["name"] == "acme"
    duplicate = runner.invoke(app, ["tenants", "create", "acme"])
    assert duplicate.exit_code == 2 and "exists already" in duplicate.output

    key = runner.invoke(app, ["keys", "create", "--tenant", "acme"])
    assert key.exit_code == 0 and key.stdout.strip().startswith("aa_")
    assert key.stdout.strip().count("\n") == 0  # the key alone on stdout: KEY=$(agentadapter keys create ...)
    scoped = json.loads(runner.invoke(app, ["keys", "create", "--tenant", "acme", "--role", "viewer", "--scope",
                                            "runs:read", "--expires-days", "7", "--json"]).stdout)
    assert (scoped["role"], scoped["scopes"]) == ("viewer", ["runs:read"]) and scoped["expires_at"]

    listed = json.loads(runner.invoke(app, ["keys", "list", "--tenant", "acme", "--json"]).stdout)
    assert {k["prefix"] for k in listed} == {key.stdout.strip()[:11], scoped["prefix"]}
    assert all(key.stdout.strip() not in json.dumps(k) for k in listed)
    assert runner.invoke(app, ["keys", "list", "--tenant", "acme"]).exit_code == 0
    revoked = runner.invoke(app, ["keys", "revoke", scoped["prefix"], "--tenant", "acme"])
    assert revoked.exit_code == 0 and scoped["prefix"] in revoked.stdout
    assert [k["revoked"] for k in json.loads(runner.invoke(app, ["keys", "list", "-t", "acme", "--json"]).stdout)
            if k["id"] == scoped["id"]] == [True]

    names = {t["name"] for t in json.loads(runner.invoke(app, ["tenants", "list", "--json"]).stdout)}
    assert names == {"acme"}
    assert runner.invoke(app, ["tenants", "list"]).exit_code == 0

    unknown = runner.invoke(app, ["keys", "create", "--tenant", "nobody"])
    assert unknown.exit_code == 2 and "tenants create nobody" in unknown.output
    bad_role = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--role", "owner"])
    assert bad_role.exit_code == 2


@pytest.mark.parametrize("days", ["0", "-1", "-0.5", "nan", "inf", "1e9"])
def test_a_key_lifetime_of_zero_or_less_is_refused(cli: tuple[CliRunner, typer.Typer], days: str) -> None:
    runner, app = cli
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    refused = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--expires-days", days])
    assert refused.exit_code == 2, refused.output
    assert "--expires-days" in refused.output and "more than 0" in refused.output
    assert json.loads(runner.invoke(app, ["keys", "list", "--tenant", "acme", "--json"]).stdout) == []


def test_db_upgrade_current_and_downgrade(cli: tuple[CliRunner, typer.Typer]) -> None:
    runner, app = cli
    assert "revision none" in runner.invoke(app, ["db", "current"]).stdout
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and f"revision {migrate.head()}" in upgraded.stdout
    assert "up to date" in runner.invoke(app, ["db", "current"]).stdout
    down = runner.invoke(app, ["db", "downgrade", "base"])
    assert down.exit_code == 0 and "base (empty)" in down.stdout
    assert "behind" in runner.invoke(app, ["db", "current"]).stdout


def test_serve_refuses_several_workers_without_redis_and_unsafe_secrets(
    cli: tuple[CliRunner, typer.Typer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner, app = cli
    several = runner.invoke(app, ["serve", "--workers", "2"])
    assert several.exit_code == 2 and "AGENTADAPTER_REDIS_URL" in several.output
    monkeypatch.setenv("AGENTADAPTER_ENV", "production")
    get_settings.cache_clear()
    unsafe = runner.invoke(app, ["serve"])
    assert unsafe.exit_code == 2 and "AGENTADAPTER_SECRET_KEY" in unsafe.output


def test_a_bad_database_url_is_a_usage_error(cli: tuple[CliRunner, typer.Typer], monkeypatch: pytest.MonkeyPatch) -> None:
    runner, app = cli
    monkeypatch.setenv("AGENTADAPTER_DATABASE_URL", "mysql://user@host/db")
    get_settings.cache_clear()
    result = runner.invoke(app, ["db", "current"])
    assert result.exit_code == 2 and "PostgreSQL" in result.output
