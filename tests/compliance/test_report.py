"""The compliance report of a tenant with activity, as JSON and as HTML; and retention per tenant."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from agentadapter.service.compliance import purge_by_policy
from agentadapter.store.models import AuditLog, Run, utcnow
from server.conftest import Api


async def _activity(api: Api, tenant: str = "a") -> None:
    agent = await api.create_agent(tenant=tenant)
    for text in ("one", "two"):
        started = await api.request("POST", "/v1/runs", tenant=tenant, json={"agent_id": agent["id"], "input": text})
        await api.wait_run(started.json()["id"], tenant=tenant)
    assert (await api.request("GET", "/v1/export", tenant=tenant)).status_code == 200
    key = await api.request(
        "POST", "/v1/provider-keys", tenant=tenant, json={"provider": "openai", "key": "sk-test-" + "x" * 40}
    )
    assert key.status_code in (200, 201), key.text
    await api.request(
        "PATCH",
        "/v1/compliance/policy",
        tenant=tenant,
        json={
            "pii_mode": "hash",
            "retention_days": 14,
            "external_providers": ["openai"],
            "required_consents": ["training"],
        },
    )


async def test_the_report_of_a_tenant_with_activity(any_api: Api) -> None:
    api = any_api
    await _activity(api)
    await _activity(api, "b")  # another tenant's activity is not in a's report
    tenant = await api.tenant()
    async with api.state.db.writer() as session:  # an old run, to show in an older age band
        old = (await session.scalars(sa.select(Run).where(Run.tenant_id == tenant.id).limit(1))).one()
        old.created_at = utcnow() - timedelta(days=45)

    response = await api.request("GET", "/v1/compliance/report")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["tenant"] == {"id": str(tenant.id), "name": tenant.name}
    runs = report["data_held"]["runs"]
    assert runs["count"] == 2 and runs["by_age"]["under_7_days"] == 1 and runs["by_age"]["30_to_90_days"] == 1
    assert report["data_held"]["agent_steps"]["count"] == 2
    assert report["data_held"]["provider_keys"]["count"] == 1
    assert report["data_held"]["api_keys"]["count"] == 3
    assert report["retention"] == {**report["retention"], "days": 14, "source": "tenant"}
    assert report["anonymization"]["pii_mode"] == "hash"
    assert report["anonymization"]["external_providers"] == ["openai"]
    assert report["consents"]["required"] == ["training"]
    assert len(report["exports"]) == 1 and report["exports"][0]["actor_type"] == "api_key"
    assert [c["action"] for c in report["key_changes"]] == ["provider_key.create"]
    access = report["access"]
    assert access["audit_entries_by_role"]["admin"]["actions"]["run.create"] == 2
    assert access["active_api_keys_by_role"] == {"admin": 1, "member": 1, "viewer": 1}
    async with api.state.db.session() as session:
        entries = await session.scalar(
            sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.tenant_id == tenant.id)
        )
    assert report["data_held"]["audit_entries"]["count"] == entries

    page = await api.request("GET", "/v1/compliance/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for heading in ("Data held", "Retention", "Anonymization", "Erasures", "Exports", "Key changes", "Access by role"):
        assert f"<h2>{heading}" in html
    assert tenant.name in html and "provider_key.create" in html and "<script" not in html

    for role in ("member", "viewer"):
        assert (await api.request("GET", "/v1/compliance/report", as_=role)).status_code == 403


async def test_a_tenants_retention_overrides_the_servers(any_api: Api) -> None:
    api = any_api
    short, default = await api.tenant("short"), await api.tenant("default")
    for label in ("short", "default"):
        agent = await api.create_agent(tenant=label)
        started = await api.request("POST", "/v1/runs", tenant=label, json={"agent_id": agent["id"], "input": "x"})
        await api.wait_run(started.json()["id"], tenant=label)
    policy = await api.request("PATCH", "/v1/compliance/policy", tenant="short", json={"retention_days": 2})
    assert policy.json()["effective_retention_days"] == 2
    ten_days_ago = utcnow() - timedelta(days=10)
    async with api.state.db.writer() as session:
        await session.execute(
            sa.update(Run)
            .where(Run.tenant_id.in_([short.id, default.id]))
            .values(created_at=ten_days_ago, finished_at=ten_days_ago)
        )

    report = await purge_by_policy(api.state.db, default_days=30)
    assert report.counts["runs"] >= 1
    async with api.state.db.session() as session:
        rows = await session.execute(
            sa.select(Run.tenant_id, sa.func.count())
            .where(Run.tenant_id.in_([short.id, default.id]))
            .group_by(Run.tenant_id)
        )
        left: dict[uuid.UUID, int] = {row[0]: row[1] for row in rows}
    assert left == {default.id: 1}

    # Cleared, the tenant follows the server's retention again.
    cleared = await api.request("PATCH", "/v1/compliance/policy", tenant="short", json={"retention_days": None})
    assert cleared.json()["retention_days"] is None
    assert cleared.json()["effective_retention_days"] == api.state.settings.retention_days


async def test_the_export_carries_consents_erasures_and_the_policy_but_not_its_key(api: Api) -> None:
    await _activity(api)
    tenant = await api.tenant()
    async with api.state.db.session() as session:
        from agentadapter.store import users

        default = await users.default_user(session, tenant.id)
    await api.request("PUT", f"/v1/compliance/consents/{default.id}", json={"consents": {"training": True}})
    exported = (await api.request("GET", "/v1/export")).json()
    assert [(c["purpose"], c["granted"]) for c in exported["consents"]] == [("training", True)]
    assert exported["erasures"] == []
    assert exported["compliance_policy"]["pii_mode"] == "hash"
    assert "hash_key" not in exported["compliance_policy"]


async def test_a_server_that_keeps_everything_still_purges_a_tenant_with_a_period(api: Api) -> None:
    short, other = await api.tenant("short"), await api.tenant("other")
    for label in ("short", "other"):
        agent = await api.create_agent(tenant=label)
        started = await api.request("POST", "/v1/runs", tenant=label, json={"agent_id": agent["id"], "input": "x"})
        await api.wait_run(started.json()["id"], tenant=label)
    await api.request("PATCH", "/v1/compliance/policy", tenant="short", json={"retention_days": 1})
    old = utcnow() - timedelta(days=400)
    async with api.state.db.writer() as session:
        await session.execute(
            sa.update(Run).where(Run.tenant_id.in_([short.id, other.id])).values(created_at=old, finished_at=old)
        )
    await purge_by_policy(api.state.db, default_days=0)
    async with api.state.db.session() as session:
        left = set(await session.scalars(sa.select(Run.tenant_id).where(Run.tenant_id.in_([short.id, other.id]))))
    assert left == {other.id}
