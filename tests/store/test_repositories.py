"""The repositories, on SQLite and PostgreSQL: what they store, what they refuse, and that every read is
scoped to its tenant (another tenant's row is "not found", never seen in a list)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agentadapter.store import agents, api_keys, audit, runs, tenants, users, workflows
from agentadapter.store.database import Database
from agentadapter.store.errors import InvalidCursor, RecordConflict, RecordNotFound
from agentadapter.store.models import (
    AgentDefinition,
    AgentVersion,
    ApiKey,
    AuditLog,
    Project,
    Run,
    Tenant,
    User,
    UserSettings,
)
from store.databases import unique


async def test_a_new_tenant_gets_a_default_project_user_and_settings(db: Database, tenant: Tenant) -> None:
    async with db.session() as session:
        project = await tenants.default_project(session, tenant.id)
        user = await users.default_user(session, tenant.id)
        settings = await users.get_settings(session, tenant.id, user.id)
    assert project.name == "default"
    assert (user.subject, user.role, user.is_default) == ("default", "admin", True)
    assert (settings.default_model, settings.rag_archives, settings.prefer_local) == (None, [], False)
    assert tenant.created_at.tzinfo is not None


async def test_tenant_names_are_unique_and_ensure_tenant_is_idempotent(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        with pytest.raises(RecordConflict):
            await tenants.create_tenant(session, tenant.name)
    async with db.writer() as session:
        again = await tenants.ensure_tenant(session, tenant.name)
    assert again.id == tenant.id
    async with db.session() as session:
        assert tenant.name in [t.name for t in await tenants.list_tenants(session)]
        with pytest.raises(RecordNotFound):
            await tenants.get_tenant(session, uuid.uuid4())


async def test_agents_are_versioned_on_spec_changes_only(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        agent = await agents.create_agent(session, tenant.id, name="writer", model="test/echo", tools=["web_search"],
                                          instructions="Write.")
    assert agent.version == 1
    async with db.writer() as session:
        same = await agents.update_agent(session, tenant.id, agent.id, {"description": "Writes things."})
        assert same.version == 1
        changed = await agents.update_agent(session, tenant.id, agent.id, {"instructions": "Write well."})
        assert changed.version == 2
    async with db.session() as session:
        versions = await agents.list_agent_versions(session, tenant.id, agent.id)
        first = await agents.get_agent_version(session, tenant.id, agent.id, 1)
        with pytest.raises(RecordNotFound):
            await agents.get_agent_version(session, tenant.id, agent.id, 9)
    assert [v.version for v in versions] == [2, 1]
    assert first.spec["instructions"] == "Write." and versions[0].spec["instructions"] == "Write well."


async def test_agent_names_are_unique_per_tenant_only(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    async with db.writer() as session:
        first = await agents.create_agent(session, tenant.id, name="helper")
        await agents.create_agent(session, other_tenant.id, name="helper")
        second = await agents.create_agent(session, tenant.id, name="second")
        with pytest.raises(RecordConflict) as conflict:
            await agents.create_agent(session, tenant.id, name="helper")
        assert conflict.value.param == "name"
        with pytest.raises(RecordConflict):
            await agents.update_agent(session, tenant.id, second.id, {"name": "helper"})
        with pytest.raises(ValueError, match="unknown agent fields"):
            await agents.update_agent(session, tenant.id, first.id, {"colour": "red"})


async def test_clones_copy_the_spec_under_new_names(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        source = await agents.create_agent(session, tenant.id, name="base", model="test/echo", tools=["web_search"])
        copy = await agents.clone_agent(session, tenant.id, source.id)
        copy2 = await agents.clone_agent(session, tenant.id, source.id)
        named = await agents.clone_agent(session, tenant.id, source.id, name="mine")
    assert (copy.name, copy2.name, named.name) == ("base-copy", "base-copy-2", "mine")
    assert copy.tools == ["web_search"] and copy.version == 1
    assert copy.meta["cloned_from"] == {"id": str(source.id), "version": 1}


async def test_agents_are_found_by_name_or_id_and_listed_a_page_at_a_time(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        made = [await agents.create_agent(session, tenant.id, name=f"agent-{i}", model="test/echo" if i % 2 else None,
                                          tools=["web_search"] if i == 3 else [])
                for i in range(5)]
    async with db.session() as session:
        found = await agents.find_agents(session, tenant.id, ["agent-1", str(made[2].id), "nobody"])
        assert {k: v.id for k, v in found.items()} == {"agent-1": made[1].id, str(made[2].id): made[2].id}
        pages, cursor = [], None
        while True:
            page = await agents.list_agents(session, tenant.id, limit=2, cursor=cursor)
            pages.append([a["name"] for a in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == [["agent-4", "agent-3"], ["agent-2", "agent-1"], ["agent-0"]]
        assert [a["name"] for a in (await agents.list_agents(session, tenant.id, model="test/echo")).items] == \
            ["agent-3", "agent-1"]
        assert [a["name"] for a in (await agents.list_agents(session, tenant.id, name="T-4")).items] == ["agent-4"]
        assert [a["name"] for a in (await agents.list_agents(session, tenant.id, tool="web_search")).items] == ["agent-3"]
        assert (await agents.list_agents(session, tenant.id, name="%")).items == []
        with pytest.raises(InvalidCursor):
            await agents.list_agents(session, tenant.id, cursor="not-a-cursor")


async def test_an_agent_read_as_a_row_is_the_agent(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    async with db.writer() as session:
        made = await agents.create_agent(session, tenant.id, name="as-a-row", model="test/echo", tools=["web_search"],
                                         meta={"team": "blue"})
    async with db.session() as session:
        row = await agents.read_agent(session, tenant.id, made.id)
        orm = await agents.get_agent(session, tenant.id, made.id)
        with pytest.raises(RecordNotFound):
            await agents.read_agent(session, other_tenant.id, made.id)
    attributes = {c.key for c in sa.inspect(type(orm)).column_attrs}
    assert row == {key: getattr(orm, key) for key in attributes}
    assert row["meta"] == {"team": "blue"} and row["tools"] == ["web_search"]


async def test_another_tenants_agent_is_not_found(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    async with db.writer() as session:
        agent = await agents.create_agent(session, tenant.id, name="private")
    async with db.writer() as session:
        for call in (agents.get_agent(session, other_tenant.id, agent.id),
                     agents.update_agent(session, other_tenant.id, agent.id, {"instructions": "x"}),
                     agents.delete_agent(session, other_tenant.id, agent.id),
                     agents.clone_agent(session, other_tenant.id, agent.id),
                     agents.list_agent_versions(session, other_tenant.id, agent.id)):
            with pytest.raises(RecordNotFound):
                await call
        assert (await agents.list_agents(session, other_tenant.id)).items == []
        assert await agents.find_agents(session, other_tenant.id, ["private", str(agent.id)]) == {}


async def test_deleting_an_agent_removes_its_versions_and_unlinks_its_runs(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        agent = await agents.create_agent(session, tenant.id, name="doomed")
        project = await tenants.default_project(session, tenant.id)
        run = await runs.create_run(session, tenant.id, input="hi", project_id=project.id, agent_id=agent.id)
    async with db.writer() as session:
        await agents.delete_agent(session, tenant.id, agent.id)
    async with db.session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(AgentVersion)
                                    .where(AgentVersion.agent_id == agent.id)) == 0
        assert (await runs.get_run(session, tenant.id, run.id)).agent_id is None


async def test_workflows_bump_their_version_when_the_spec_changes(db: Database, tenant: Tenant,
                                                                 other_tenant: Tenant) -> None:
    spec = {"name": "flow", "agents": [{"name": "a", "model": "test/echo"}]}
    async with db.writer() as session:
        flow = await workflows.create_workflow(session, tenant.id, name="flow", spec=spec)
        with pytest.raises(RecordConflict):
            await workflows.create_workflow(session, tenant.id, name="flow", spec=spec)
        renamed = await workflows.update_workflow(session, tenant.id, flow.id, {"description": "d"})
        assert renamed.version == 1
        changed = await workflows.update_workflow(session, tenant.id, flow.id,
                                                  {"spec": {**spec, "strategy": "parallel"}})
        assert changed.version == 2
        with pytest.raises(RecordNotFound):
            await workflows.get_workflow(session, other_tenant.id, flow.id)
        assert (await workflows.list_workflows(session, other_tenant.id)).items == []
        assert [w.name for w in (await workflows.list_workflows(session, tenant.id)).items] == ["flow"]
        await workflows.delete_workflow(session, tenant.id, flow.id)
        with pytest.raises(RecordNotFound):
            await workflows.get_workflow(session, tenant.id, flow.id)


async def test_runs_are_listed_by_filters_and_closed_once(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    async with db.writer() as session:
        project = await tenants.default_project(session, tenant.id)
        agent = await agents.create_agent(session, tenant.id, name="runner")
        first = await runs.create_run(session, tenant.id, input="one", project_id=project.id, agent_id=agent.id)
        second = await runs.create_run(session, tenant.id, input=[{"role": "user", "content": "two"}],
                                       project_id=project.id)
        await runs.finish_run(session, tenant.id, second.id, "cancelled", {"type": "Cancelled", "message": "x"})
        with pytest.raises(RecordConflict):
            await runs.finish_run(session, tenant.id, second.id, "cancelled", {"type": "Cancelled", "message": "x"})
    async with db.session() as session:
        everything = await runs.list_runs(session, tenant.id)
        assert [r["id"] for r in everything.items] == [second.id, first.id]
        assert "tenant_id" not in everything.items[0]
        assert [r["id"] for r in (await runs.list_runs(session, tenant.id, status="queued")).items] == [first.id]
        assert [r["id"] for r in (await runs.list_runs(session, tenant.id, agent_id=agent.id)).items] == [first.id]
        assert [r["id"] for r in (await runs.list_runs(session, tenant.id, project_id=project.id)).items] == \
            [second.id, first.id]
        page = await runs.list_runs(session, tenant.id, limit=1)
        assert page.has_more and [r["id"] for r in (await runs.list_runs(
            session, tenant.id, limit=1, cursor=page.next_cursor)).items] == [first.id]
        assert (await runs.list_runs(session, other_tenant.id)).items == []
        with pytest.raises(RecordNotFound):
            await runs.get_run(session, other_tenant.id, first.id)
        assert (await runs.get_run(session, tenant.id, second.id)).input == [{"role": "user", "content": "two"}]
        # The read path's rows are the runs, column for column, and as tenant-bound.
        with pytest.raises(RecordNotFound):
            await runs.read_run(session, other_tenant.id, first.id)
        orm = await runs.get_run(session, tenant.id, second.id)
        assert await runs.read_run(session, tenant.id, second.id) == {
            c.key: getattr(orm, c.key) for c in sa.inspect(type(orm)).column_attrs}
        assert await runs.read_agent_runs(session, other_tenant.id, second.id) == []


async def test_interrupted_runs_are_failed_at_start_up(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        project = await tenants.default_project(session, tenant.id)
        run = await runs.create_run(session, tenant.id, input="x", project_id=project.id)
    async with db.writer() as session:
        assert await runs.fail_interrupted_runs(session, "the server stopped") >= 1
    async with db.session() as session:
        closed = await runs.get_run(session, tenant.id, run.id)
    assert (closed.status, closed.error["type"]) == ("failed", "ServerLost")


async def test_users_are_created_once_and_follow_their_token(db: Database, tenant: Tenant,
                                                            other_tenant: Tenant) -> None:
    async with db.writer() as session:
        user = await users.get_or_create_user(session, tenant.id, "user-1", role="viewer", email="a@example.com")
        again = await users.get_or_create_user(session, tenant.id, "user-1", role="admin", display_name="Ann")
        assert again.id == user.id and (again.role, again.display_name) == ("admin", "Ann")
        with pytest.raises(RecordNotFound):
            await users.get_user(session, other_tenant.id, user.id)
        with pytest.raises(RecordNotFound):
            await users.get_settings(session, other_tenant.id, user.id)


async def test_settings_are_patched_or_replaced(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        user = await users.default_user(session, tenant.id)
        patched = await users.update_settings(session, tenant.id, user.id,
                                              {"default_model": "test/echo", "rag_archives": ["s3://docs"]})
        assert (patched.default_model, patched.rag_archives, patched.prefer_local) == \
            ("test/echo", ["s3://docs"], False)
        replaced = await users.update_settings(session, tenant.id, user.id, {"prefer_local": True}, replace=True)
        assert (replaced.default_model, replaced.rag_archives, replaced.prefer_local) == (None, [], True)
        with pytest.raises(ValueError, match="unknown settings"):
            await users.update_settings(session, tenant.id, user.id, {"theme": "dark"})


async def test_api_keys_are_stored_as_hashes_and_found_while_live(db: Database, tenant: Tenant) -> None:
    async with db.writer() as session:
        row, key = await api_keys.create_api_key(session, tenant.id, name="ci", role="viewer", scopes=["runs:read"])
        with pytest.raises(ValueError, match="in the future"):  # no key is born expired
            await api_keys.create_api_key(session, tenant.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
        lapsed, expired = await api_keys.create_api_key(session, tenant.id,
                                                        expires_at=datetime.now(UTC) + timedelta(days=1))
        lapsed.expires_at = datetime.now(UTC) - timedelta(seconds=1)  # a day later
        await session.flush()
        with pytest.raises(ValueError, match="role"):
            await api_keys.create_api_key(session, tenant.id, role="owner")
    assert key.startswith("aa_") and len(key) > 40 and row.prefix == key[:11]
    assert row.key_hash == api_keys.hash_key(key) and key not in (row.key_hash, row.prefix)
    async with db.writer() as session:
        stored = await session.scalar(sa.select(ApiKey).where(ApiKey.id == row.id))
        assert stored is not None and key not in {stored.key_hash, stored.prefix, stored.name}
        assert (await api_keys.find_api_key(session, key)).id == row.id  # type: ignore[union-attr]
        assert await api_keys.find_api_key(session, expired) is None
        assert await api_keys.find_api_key(session, "aa_" + "x" * 43) is None
        assert await api_keys.find_api_key(session, "sk-not-ours") is None
        await api_keys.touch_api_key(session, tenant.id, row.id)
        await api_keys.revoke_api_key(session, tenant.id, row.id)
        assert await api_keys.find_api_key(session, key) is None
        with pytest.raises(RecordNotFound):
            await api_keys.revoke_api_key(session, uuid.uuid4(), row.id)
        listed = await api_keys.list_api_keys(session, tenant.id)
    assert {k.id for k in listed} >= {row.id} and listed[0].last_used_at is not None


async def test_audit_entries_are_listed_per_tenant(db: Database, tenant: Tenant, other_tenant: Tenant) -> None:
    async with db.writer() as session:
        await audit.record_audit(session, tenant.id, action="agent.create", resource_type="agent", resource_id="a1",
                                 actor_type="user", actor_id="u1", details={"name": "x"}, request_id="r1")
        await audit.record_audit(session, tenant.id, action="run.create", resource_type="run", resource_id="r1")
    async with db.session() as session:
        assert [e.action for e in (await audit.list_audit_logs(session, tenant.id)).items] == \
            ["run.create", "agent.create"]
        assert [e.action for e in (await audit.list_audit_logs(session, tenant.id, resource_type="agent")).items] == \
            ["agent.create"]
        assert [e.action for e in (await audit.list_audit_logs(session, tenant.id, action="run.create")).items] == \
            ["run.create"]
        assert (await audit.list_audit_logs(session, other_tenant.id)).items == []


async def test_deleting_a_tenant_cascades_to_everything_it_owns(db: Database) -> None:
    async with db.writer() as session:
        tenant = await tenants.create_tenant(session, unique("doomed"))
        agent = await agents.create_agent(session, tenant.id, name="a")
        project = await tenants.default_project(session, tenant.id)
        await runs.create_run(session, tenant.id, input="x", project_id=project.id, agent_id=agent.id)
        await api_keys.create_api_key(session, tenant.id)
        await audit.record_audit(session, tenant.id, action="x", resource_type="y")
        await workflows.create_workflow(session, tenant.id, name="w", spec={"agents": []})
    async with db.writer() as session:
        await session.execute(sa.delete(Tenant).where(Tenant.id == tenant.id))
    async with db.session() as session:
        for model in (Project, User, UserSettings, ApiKey, AgentDefinition, AgentVersion, Run, AuditLog):
            count = await session.scalar(sa.select(sa.func.count()).select_from(model)
                                         .where(model.tenant_id == tenant.id))  # type: ignore[attr-defined]
            assert count == 0, model.__name__
