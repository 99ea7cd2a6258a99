"""Tenant export (route, CLI, library) and the audit entries of sensitive operations."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import typer
from typer.testing import CliRunner

from agentadapter.config import get_settings
from agentadapter.store.database import Database, database_url
from agentadapter.store.export import SECTIONS, export_tenant
from agentadapter.store.models import AuditLog, CreditAccount, CreditTransaction, ProviderKey, UsageRecord
from server.conftest import JWT_SECRET, Api

CIPHERTEXT = "gAAAAA-this-ciphertext-must-never-leave-the-database"


async def add_money_and_keys(api: Api, tenant_id: uuid.UUID) -> None:
    async with api.state.db.writer() as session:
        session.add(ProviderKey(id=uuid.uuid4(), tenant_id=tenant_id, provider="openai", name="default",
                                ciphertext=CIPHERTEXT, hint="...abcd"))
        session.add(CreditAccount(tenant_id=tenant_id, balance_usd=7.5))
        session.add(CreditTransaction(id=uuid.uuid4(), tenant_id=tenant_id, kind="grant", amount_usd=7.5,
                                      balance_after_usd=7.5, description="welcome"))
        session.add(UsageRecord(id=uuid.uuid4(), tenant_id=tenant_id, ts=datetime.now(UTC), provider="test",
                                model="test/echo", input_tokens=3))


async def test_export_holds_every_section_and_no_secret(any_api: Api) -> None:
    api = any_api
    tenant = await api.tenant("a")
    agent = await api.create_agent()
    await api.request("PATCH", f"/v1/agents/{agent['id']}", json={"instructions": "Answer at length."})
    run = (await api.request("POST", "/v1/runs", json={"agent_id": agent["id"], "input": "Hello"})).json()
    await api.wait_run(run["id"])
    await add_money_and_keys(api, tenant.id)
    await api.create_agent(tenant="b")  # another tenant's data stays out

    response = await api.request("GET", "/v1/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    text = response.text
    document = json.loads(text)
    assert set(SECTIONS) <= set(document)
    assert document["tenant"]["id"] == str(tenant.id)
    assert [a["id"] for a in document["agents"]] == [agent["id"]]
    assert [v["version"] for v in document["agents"][0]["versions"]] == [1, 2]
    assert all(user["settings"] is not None for user in document["users"])
    exported_run = next(r for r in document["runs"] if r["id"] == run["id"])
    assert exported_run["status"] == "completed" and exported_run["events"] and exported_run["agent_runs"]
    assert document["provider_keys"][0]["hint"] == "...abcd" and "ciphertext" not in document["provider_keys"][0]
    assert CIPHERTEXT not in text
    assert all("key_hash" not in key for key in document["api_keys"])
    assert not any(tenant.admin[-20:] in line for line in text.splitlines())  # nor an API key
    assert document["credit_account"]["balance_usd"] == 7.5
    assert [t["description"] for t in document["credit_transactions"]] == ["welcome"]
    assert any(u["provider"] == "test" and u["input_tokens"] == 3 for u in document["usage_records"])
    assert {e["action"] for e in document["audit_logs"]} >= {"agent.create", "agent.update", "run.create"}
    other = (await api.tenant("b")).id
    assert str(other) not in text

    audit = (await api.request("GET", "/v1/audit-logs", params={"action": "tenant.export"})).json()["data"]
    assert len(audit) == 1 and audit[0]["resource_id"] == str(tenant.id)


async def test_export_needs_an_admin(api: Api) -> None:
    for role in ("member", "viewer"):
        response = await api.request("GET", "/v1/export", as_=role)
        assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_permissions"
    assert (await api.client.get("/v1/export")).status_code == 401


async def test_export_streams_in_batches_that_join_into_one_document(api: Api) -> None:
    tenant = await api.tenant("a")
    for _ in range(5):
        await api.create_agent()
    chunks = [chunk async for chunk in export_tenant(api.state.db, tenant.id, batch_size=2)]
    assert len(chunks) > len(SECTIONS)  # written piece by piece
    document = json.loads("".join(chunks))
    assert len(document["agents"]) == 5 and len({a["id"] for a in document["agents"]}) == 5
    assert document["credit_account"] is None and document["provider_keys"] == []


# --------------------------------------------------------------------------------------------- audit


def user_token(tenant_id: uuid.UUID, subject: str, role: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": subject, "tenant_id": str(tenant_id), "role": role, "exp": now + 300, "iat": now},
                      JWT_SECRET, algorithm="HS256")


async def test_a_role_change_from_the_identity_provider_is_audited(make_api: Any) -> None:
    async with make_api(server={"auth_cache_s": 0}) as api:
        tenant = await api.tenant("a")
        for role in ("member", "admin"):
            token = user_token(tenant.id, "carol", role)
            assert (await api.client.get("/v1/agents", headers={"Authorization": f"Bearer {token}"})).status_code \
                == 200
        entries = (await api.request("GET", "/v1/audit-logs", params={"action": "user.role_change"})).json()["data"]
        assert len(entries) == 1
        assert entries[0]["details"]["from"] == "member" and entries[0]["details"]["to"] == "admin"
        assert entries[0]["actor_type"] == "user"


async def test_audit_logs_filter_by_time_and_actor_type(api: Api) -> None:
    tenant = await api.tenant("a")
    await api.create_agent()
    old = datetime.now(UTC) - timedelta(days=3)
    async with api.state.db.writer() as session:
        session.add(AuditLog(id=uuid.uuid4(), tenant_id=tenant.id, actor_type="system", actor_id="cli",
                             action="api_key.create", resource_type="api_key", created_at=old))

    def actions(response: Any) -> list[str]:
        assert response.status_code == 200, response.text
        return [e["action"] for e in response.json()["data"]]

    day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert actions(await api.request("GET", "/v1/audit-logs", params={"since": day_ago})) == ["agent.create"]
    assert actions(await api.request("GET", "/v1/audit-logs", params={"until": day_ago})) == ["api_key.create"]
    naive = (datetime.now(UTC) - timedelta(days=1)).replace(tzinfo=None).isoformat()  # read as UTC
    assert actions(await api.request("GET", "/v1/audit-logs", params={"until": naive})) == ["api_key.create"]
    assert actions(await api.request("GET", "/v1/audit-logs", params={"actor_type": "system"})) == ["api_key.create"]
    assert actions(await api.request("GET", "/v1/audit-logs", params={"actor_type": "api_key"})) == ["agent.create"]
    bad = await api.request("GET", "/v1/audit-logs", params={"actor_type": "robot"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "actor_type"




def test_cli_key_and_tenant_changes_are_audited_and_the_tenant_exported(
    cli: tuple[CliRunner, typer.Typer], tmp_path: Path,
) -> None:
    runner, app = cli
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    key = json.loads(runner.invoke(app, ["keys", "create", "--tenant", "acme", "--json"]).stdout)
    assert runner.invoke(app, ["keys", "revoke", key["id"], "--tenant", "acme"]).exit_code == 0

    target = tmp_path / "acme.json"
    exported = runner.invoke(app, ["tenants", "export", "acme", "-o", str(target)])
    assert exported.exit_code == 0, exported.output
    document = json.loads(target.read_text())
    assert document["tenant"]["name"] == "acme" and set(SECTIONS) <= set(document)
    assert [k["id"] for k in document["api_keys"]] == [key["id"]] and document["api_keys"][0]["revoked_at"]

    to_stdout = runner.invoke(app, ["tenants", "export", "acme"])
    assert to_stdout.exit_code == 0 and json.loads(to_stdout.stdout)["tenant"]["name"] == "acme"
    missing = runner.invoke(app, ["tenants", "export", "nobody"])
    assert missing.exit_code == 2 and "no tenant named 'nobody'" in missing.output

    async def entries(db: Database) -> list[tuple[str, str, str | None, str | None]]:
        import sqlalchemy as sa

        async with db.session() as session:
            rows = await session.scalars(sa.select(AuditLog).order_by(AuditLog.created_at, AuditLog.id))
            return [(e.action, e.actor_type, e.actor_id, e.resource_id) for e in rows]

    async def read() -> list[tuple[str, str, str | None, str | None]]:
        db = Database(database_url(get_settings()))
        try:
            return await entries(db)
        finally:
            await db.dispose()

    found = asyncio.run(read())
    actions = [action for action, *_ in found]
    assert actions[:3] == ["tenant.create", "api_key.create", "api_key.revoke"]
    assert actions.count("tenant.export") == 2
    assert all((actor_type, actor_id) == ("system", "cli") for _, actor_type, actor_id, _ in found)
    assert found[1][3] == found[2][3] == key["id"]
