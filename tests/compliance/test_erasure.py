"""Erasure: after its soft-delete window, a user's data is gone from every table of the metadata, from the file
storage and from Redis (under the test's prefix), audited and reported; a tenant's erasure takes everything."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentadapter.server.routes.compliance import erasure_parts
from agentadapter.service import compliance
from agentadapter.service.common import Caller
from agentadapter.service.errors import Conflict
from agentadapter.store import api_keys, users
from agentadapter.store.files_models import Archive, ArchiveFile, KnowledgeChunk
from agentadapter.store.models import AuditLog, Base
from agentadapter.store.threads_models import Thread
from server.conftest import Api
from services import redis_url_or_skip
from store.databases import unique

MARKER = "marker-6f1c2a"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Any, str]]:
    """A Redis client and a key prefix of this test's own (its keys are deleted afterwards)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url_or_skip())
    prefix = f"{unique('aa-test-erasure')}:"
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def _every_value(api: Api) -> list[tuple[str, str]]:
    """(table, value as text) for every column of every row of every table the metadata knows."""
    found: list[tuple[str, str]] = []
    async with api.state.db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(sa.select(table))).all():
                found.extend(
                    (table.name, json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)) for v in row
                )
    return found


def _traces(values: list[tuple[str, str]], identifiers: list[str]) -> list[tuple[str, str]]:
    return [(table, value) for table, value in values if any(i in value for i in identifiers)]


async def _index(api: Api, tenant_id: uuid.UUID, file_id: uuid.UUID, text: str) -> uuid.UUID:
    """An archive holding the file, with one chunk of its text (what ingestion stores)."""
    async with api.state.db.writer() as session:
        archive = Archive(id=uuid.uuid4(), tenant_id=tenant_id, name=unique("archive"), embedding_model="test/embed")
        session.add(archive)
        await session.flush()
        member = ArchiveFile(
            id=uuid.uuid4(), tenant_id=tenant_id, archive_id=archive.id, file_id=file_id, status="ready", chunk_count=1
        )
        session.add(member)
        await session.flush()
        session.add(
            KnowledgeChunk(
                tenant_id=tenant_id,
                archive_id=archive.id,
                archive_file_id=member.id,
                file_id=file_id,
                ordinal=0,
                text=text,
                char_start=0,
                char_end=len(text),
                tokens=3,
                dimensions=2,
                embedding=b"\x00" * 8,
            )
        )
    return archive.id


async def test_a_users_erasure_leaves_no_trace_of_them(
    any_api: Api, redis_prefix: tuple[Any, str], tmp_path: Path
) -> None:
    api = any_api
    client, prefix = redis_prefix
    tenant = await api.tenant()
    subject = f"subject-{uuid.uuid4().hex[:10]}"
    email = f"{uuid.uuid4().hex[:8]}.erased@example.com"
    async with api.state.db.writer() as session:
        user = await users.get_or_create_user(session, tenant.id, subject, email=email, display_name="Erin Erased")
        key_row, key = await api_keys.create_api_key(session, tenant.id, role="member", user_id=user.id)
    headers = {"Authorization": f"Bearer {key}"}
    identifiers = [str(user.id), user.id.hex, email, subject, str(key_row.id), key_row.id.hex]

    # The user's activity: a run (with its steps, events and usage), settings, consents, a file, audit entries.
    agent = await api.create_agent()
    started = await api.client.post(
        "/v1/runs", headers=headers, json={"agent_id": agent["id"], "input": f"I am {email}"}
    )
    assert started.status_code == 202, started.text
    assert (await api.wait_run(started.json()["id"]))["status"] == "completed"
    assert (await api.client.put("/v1/settings", headers=headers, json={"prefer_local": True})).status_code == 200
    assert (
        await api.client.put(
            f"/v1/compliance/consents/{user.id}", headers=headers, json={"consents": {"training": False}}
        )
    ).status_code == 200
    uploaded = await api.client.post("/v1/files", headers=headers, files={"file": ("me.txt", f"{MARKER} {email}")})
    assert uploaded.status_code in (200, 201), uploaded.text
    blob_files = [p for p in tmp_path.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]
    assert blob_files, "the upload's blob is in the data dir"
    # A conversation of theirs (a thread, as runs continuing it leave it).
    thread_id = uuid.uuid4()
    async with api.state.db.writer() as session:
        session.add(
            Thread(
                id=thread_id,
                tenant_id=tenant.id,
                title="mine",
                created_by=user.id,
                messages=[{"role": "user", "parts": [{"kind": "text", "text": f"I am {email}"}]}],
            )
        )
    # The file's index entries: an archive membership and a chunk of its text (as ingestion writes them).
    file_id = uuid.UUID(uploaded.json()["id"])
    archive_id = await _index(api, tenant.id, file_id, f"{MARKER} {email}")
    # The admin mentions the user too (an audit entry's resource, a reason).
    await api.request("PUT", f"/v1/compliance/consents/{user.id}", json={"consents": {"analytics": True}})
    # Redis state naming the user and their key, and a key of someone else that must stay.
    await client.set(f"{prefix}ratelimit:key:{key_row.id}", "1")
    await client.set(f"{prefix}session:user:{user.id}", "1")
    await client.set(f"{prefix}ratelimit:key:{uuid.uuid4()}", "1")
    assert _traces(await _every_value(api), identifiers)

    # Asked: pending for the window, the user's keys revoked at once; cancellable.
    asked = await api.request(
        "POST", "/v1/compliance/erasures", json={"user_id": str(user.id), "reason": f"request from {email}"}
    )
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "pending"
    assert (await api.client.get("/v1/runs", headers=headers)).status_code == 401
    parts = erasure_parts(api.state)  # the server's storage and caches, and this test's Redis prefix
    parts.redis, parts.redis_prefixes = client, (prefix,)
    with pytest.raises(Conflict, match="soft-delete window"):
        await compliance.execute_erasure(parts, tenant.id, uuid.UUID(asked.json()["id"]))
    cancelled = await api.request("POST", f"/v1/compliance/erasures/{asked.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await api.request("POST", "/v1/compliance/erasures", json={"user_id": str(user.id)})
    assert again.status_code == 202
    duplicate = await api.request("POST", "/v1/compliance/erasures", json={"user_id": str(user.id)})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "erasure_pending"

    # The window passes (forced here), and the erasure is carried out.
    admin = Caller.system(tenant.id, "test")
    report = await compliance.execute_erasure(parts, tenant.id, uuid.UUID(again.json()["id"]), caller=admin, force=True)
    assert report["deleted"]["runs"] == 1 and report["deleted"]["users"] == 1
    assert report["deleted"]["files"] == 1 and report["files_removed"] == 1
    assert report["deleted"]["api_keys"] == 1 and report["deleted"]["user_consents"] == 2
    assert report["redis_keys_removed"] == 2
    assert report["deleted"]["threads"] == 1

    left = _traces(await _every_value(api), identifiers)
    async with api.state.db.session() as session:
        assert await session.get(Thread, thread_id) is None  # the conversation is gone, its messages with it
        assert not (await session.execute(sa.select(KnowledgeChunk.id).where(KnowledgeChunk.file_id == file_id))).all()
        assert not (await session.execute(sa.select(ArchiveFile.id).where(ArchiveFile.file_id == file_id))).all()
        assert (await session.get(Archive, archive_id)).index_version == 1  # type: ignore[union-attr]
        if api.state.db.dialect == "sqlite":  # the full-text index follows its table
            found = await session.execute(
                sa.text("SELECT rowid FROM knowledge_chunks_fts WHERE knowledge_chunks_fts MATCH :marker"),
                {"marker": f'"{MARKER}"'},
            )
            assert not found.all()
    assert left == [], left
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]
    remaining = [k async for k in client.scan_iter(match=f"{prefix}*")]
    assert len(remaining) == 1
    # The tenant's own data stays; the erasure is on record (without the user) and in the audit log.
    assert (await api.request("GET", f"/v1/agents/{agent['id']}")).status_code == 200
    done = (await api.request("GET", f"/v1/compliance/erasures/{again.json()['id']}")).json()
    assert done["status"] == "done" and done["user_id"] is None and done["report"]["deleted"]["runs"] == 1
    async with api.state.db.session() as session:
        actions = set(await session.scalars(sa.select(AuditLog.action).where(AuditLog.tenant_id == tenant.id)))
    assert {"erasure.request", "erasure.cancel", "erasure.execute"} <= actions


async def test_erasure_requests_are_checked(api: Api) -> None:
    tenant = await api.tenant()
    async with api.state.db.session() as session:
        default = await users.default_user(session, tenant.id)
    refused = await api.request("POST", "/v1/compliance/erasures", json={"user_id": str(default.id)})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "default_user"
    assert (
        await api.request("POST", "/v1/compliance/erasures", json={"user_id": str(uuid.uuid4())})
    ).status_code == 404
    assert (await api.request("POST", "/v1/compliance/erasures", as_="member", json={})).status_code == 403
    assert (await api.request("POST", "/v1/compliance/erasures", json={"user_id": "nope"})).status_code == 422
    other = await api.request("POST", "/v1/compliance/erasures", tenant="b", json={})
    assert other.status_code == 202
    again = await api.request("POST", "/v1/compliance/erasures", tenant="b", json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "erasure_pending"
    assert (await api.request("GET", f"/v1/compliance/erasures/{other.json()['id']}")).status_code == 404


async def test_a_tenants_erasure_removes_the_tenant_and_everything_it_owns(
    any_api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = any_api
    monkeypatch.setenv("AGENTADAPTER_ERASURE_GRACE_DAYS", "0")  # no window: carried out at once
    tenant = await api.tenant("gone")
    kept = await api.tenant("kept")
    agent = await api.create_agent(tenant="gone")
    started = await api.request("POST", "/v1/runs", tenant="gone", json={"agent_id": agent["id"], "input": "hi"})
    await api.wait_run(started.json()["id"], tenant="gone")
    await api.request("POST", "/v1/files", tenant="gone", files={"file": ("t.txt", f"{MARKER} tenant file")})
    await api.create_agent(tenant="kept")

    erased = await api.request("POST", "/v1/compliance/erasures", tenant="gone", json={"reason": "contract ended"})
    assert erased.status_code == 202, erased.text
    body = erased.json()
    assert body["status"] == "done" and body["report"]["deleted"]["tenants"] == 1
    assert body["report"]["deleted"]["runs"] == 1 and body["report"]["files_removed"] == 1
    identifiers = [str(tenant.id), tenant.id.hex, tenant.name]
    assert _traces(await _every_value(api), identifiers) == []
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]
    assert (await api.request("GET", "/v1/agents", tenant="gone")).status_code == 401
    assert len((await api.request("GET", "/v1/agents", tenant="kept")).json()["data"]) == 1
    assert kept.id != tenant.id


async def test_the_housekeeping_carries_out_erasures_whose_window_has_passed(make_api: Any, tmp_path: Path) -> None:
    async with make_api(server={"retention_interval_s": 3600}) as api:  # started, never due in the test
        tenant = await api.tenant()
        async with api.state.db.writer() as session:
            user = await users.get_or_create_user(session, tenant.id, unique("subject"), email="due@example.com")
            _, key = await api_keys.create_api_key(session, tenant.id, role="member", user_id=user.id)
        uploaded = await api.client.post(
            "/v1/files", headers={"Authorization": f"Bearer {key}"}, files={"file": ("due.txt", f"{MARKER} due")}
        )
        assert uploaded.status_code in (200, 201), uploaded.text
        asked = await api.request("POST", "/v1/compliance/erasures", json={"user_id": str(user.id)})
        assert asked.json()["status"] == "pending"
        retention = api.state.retention
        assert retention is not None and retention.erasures.storage is not None  # the app gave it the storage
        assert await retention.run_once() is not None
        assert (await api.request("GET", f"/v1/compliance/erasures/{asked.json()['id']}")).json()[
            "status"
        ] == "pending"  # still in its window
        async with api.state.db.writer() as session:
            from agentadapter.store.compliance_models import ErasureRequest
            from agentadapter.store.models import utcnow

            await session.execute(
                sa.update(ErasureRequest)
                .where(ErasureRequest.id == uuid.UUID(asked.json()["id"]))
                .values(execute_after=utcnow())
            )
        await retention.run_once()
        done = (await api.request("GET", f"/v1/compliance/erasures/{asked.json()['id']}")).json()
        assert done["status"] == "done" and done["report"]["files_removed"] == 1
        assert _traces(await _every_value(api), [str(user.id), user.id.hex, "due@example.com"]) == []
        assert not [p for p in tmp_path.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]
