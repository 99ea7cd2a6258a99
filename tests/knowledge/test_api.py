"""Files and archives through the API: upload, dedup, ingestion with per-file status, hybrid search with
citations, tenant isolation - on SQLite and PostgreSQL, embedded offline by the packaged local model."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from knowledge.documents import pdf
from server.conftest import Api

TIDES = b"""# Tides

Tides are the rise and fall of sea levels caused by the gravity of the Moon and the Sun.

## Spring tides

When the Sun and the Moon line up, their pulls add up and the tidal range is largest: spring tides.
"""
BAKING = b"""Sourdough bread rises because wild yeast and lactobacilli ferment the dough.
A starter is fed with flour and water every day.
"""


async def upload(api: Api, name: str, data: bytes, tenant: str = "a") -> dict[str, Any]:
    response = await api.request("POST", "/v1/files", tenant=tenant, files={"file": (name, data)})
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def archive_with(api: Api, files: list[dict[str, Any]], tenant: str = "a",
                       name: str | None = None) -> dict[str, Any]:
    created = await api.request("POST", "/v1/archives", tenant=tenant,
                                json={"name": name or f"docs-{uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    archive = dict(created.json())
    added = await api.request("POST", f"/v1/archives/{archive['id']}/files", tenant=tenant,
                              json={"file_ids": [f["id"] for f in files]})
    assert added.status_code == 202, added.text
    assert api.state.knowledge is not None
    await api.state.knowledge.wait_idle()
    return archive


async def statuses(api: Api, archive_id: str, tenant: str = "a") -> dict[str, dict[str, Any]]:
    listed = (await api.request("GET", f"/v1/archives/{archive_id}/files", tenant=tenant)).json()["data"]
    return {row["filename"]: row for row in listed}


async def search(api: Api, archive_id: str, query: str, tenant: str = "a", **extra: Any) -> list[dict[str, Any]]:
    response = await api.request("POST", f"/v1/archives/{archive_id}/search", tenant=tenant,
                                 json={"query": query, **extra})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


@pytest.mark.slow
async def test_upload_ingest_and_search_with_citations(any_api: Api) -> None:
    api = any_api
    tides = await upload(api, "tides.md", TIDES)
    assert tides["media_type"] == "text/markdown" and tides["size_bytes"] == len(TIDES)
    again = await api.request("POST", "/v1/files", files={"file": ("copy.md", TIDES)})
    assert again.status_code == 200 and again.json()["id"] == tides["id"]  # same bytes, same file
    baking = await upload(api, "bread.txt", BAKING)
    report = await upload(api, "report.pdf", pdf(["Quarterly revenue grew by twelve percent.",
                                                   "The lighthouse keeper logged every storm in 1887."]))
    assert report["media_type"] == "application/pdf"
    locked = await upload(api, "locked.pdf", pdf(["classified"], password="pw"))

    archive = await archive_with(api, [tides, baking, report, locked])
    status = await statuses(api, archive["id"])
    assert {name: row["status"] for name, row in status.items()} == {
        "tides.md": "ready", "bread.txt": "ready", "report.pdf": "ready", "locked.pdf": "failed"}
    assert status["locked.pdf"]["error"]["code"] == "encrypted" and status["tides.md"]["chunk_count"] >= 1
    assert (await api.request("GET", f"/v1/archives/{archive['id']}")).json()["dimensions"] == 384

    semantic = await search(api, archive["id"], "why does the ocean go up and down with the moon")
    assert semantic[0]["filename"] == "tides.md" and semantic[0]["vector_rank"] in (1, 2)  # its two sections
    first = semantic[0]
    assert first["section"] in ("Tides", "Spring tides") and first["text"] in TIDES.decode()
    assert TIDES.decode()[first["char_start"]:first["char_end"]] == first["text"]

    keyword = await search(api, archive["id"], "lighthouse 1887")
    assert keyword[0]["filename"] == "report.pdf" and keyword[0]["page"] == 2 and keyword[0]["keyword_rank"] == 1

    only_text = await search(api, archive["id"], "lighthouse", media_types=["text/plain"])
    assert {hit["filename"] for hit in only_text} == {"bread.txt"}
    only_file = await search(api, archive["id"], "moon", file_ids=[baking["id"]])
    assert {hit["filename"] for hit in only_file} <= {"bread.txt"}

    deleted = await api.request("DELETE", f"/v1/files/{report['id']}")
    assert deleted.status_code == 204
    after = await search(api, archive["id"], "lighthouse 1887")
    assert all(hit["filename"] != "report.pdf" for hit in after)


async def test_tenants_never_see_each_others_files_archives_or_hits(api: Api) -> None:
    mine = await upload(api, "tides.md", TIDES, tenant="a")
    theirs = await upload(api, "tides.md", TIDES, tenant="b")
    assert mine["id"] != theirs["id"]  # dedup is per tenant
    archive = await archive_with(api, [mine], tenant="a")
    for method, path, body in (("GET", f"/v1/files/{mine['id']}", None),
                               ("DELETE", f"/v1/files/{mine['id']}", None),
                               ("GET", f"/v1/archives/{archive['id']}", None),
                               ("GET", f"/v1/archives/{archive['id']}/files", None),
                               ("POST", f"/v1/archives/{archive['id']}/search", {"query": "tides"}),
                               ("POST", f"/v1/archives/{archive['id']}/files", {"file_ids": [theirs["id"]]})):
        answer = await api.request(method, path, tenant="b", json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    their_archive = await api.request("POST", "/v1/archives", tenant="b", json={"name": "theirs"})
    borrowed = await api.request("POST", f"/v1/archives/{their_archive.json()['id']}/files", tenant="b",
                                 json={"file_ids": [mine["id"]]})
    assert borrowed.status_code == 422 and borrowed.json()["error"]["code"] == "unknown_file"
    listed = (await api.request("GET", "/v1/files", tenant="b")).json()["data"]
    assert [f["id"] for f in listed] == [theirs["id"]]
    viewer = await api.request("POST", "/v1/files", as_="viewer", files={"file": ("x.txt", b"hello")})
    assert viewer.status_code == 403


async def test_bad_uploads_are_refused_with_a_reason(api: Api) -> None:
    empty = await api.request("POST", "/v1/files", files={"file": ("empty.txt", b"")})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_file"
    binary = await upload(api, "../../etc/passwd", bytes(range(256)) * 4)
    assert binary["filename"] == "passwd" and binary["media_type"] == "application/octet-stream"
    archive = await archive_with(api, [binary])
    status = await statuses(api, archive["id"])
    assert status["passwd"]["status"] == "failed" and status["passwd"]["error"]["code"] == "unsupported_type"
    duplicate = await api.request("POST", "/v1/archives", json={"name": archive["name"]})
    assert duplicate.status_code == 409
    bad_name = await api.request("POST", "/v1/archives", json={"name": "../x"})
    assert bad_name.status_code == 422
    empty_query = await api.request("POST", f"/v1/archives/{archive['id']}/search", json={"query": "   "})
    assert empty_query.status_code == 422


async def test_remove_reindex_delete_and_odd_queries(api: Api, monkeypatch: Any) -> None:
    tides = await upload(api, "tides.md", TIDES)
    bread = await upload(api, "bread.txt", BAKING)
    archive = await archive_with(api, [tides, bread])
    for query in ('"unbalanced NEAR(', "***", "AND OR NOT", "\u00e9t\u00e9 \u6d77"):  # no operator reaches FTS
        response = await api.request("POST", f"/v1/archives/{archive['id']}/search", json={"query": query})
        assert response.status_code == 200, (query, response.text)
    too_long = await api.request("POST", f"/v1/archives/{archive['id']}/search", json={"query": "x" * 4000})
    assert too_long.status_code == 422 and "shorter" in too_long.json()["error"]["message"]  # the model's limit

    removed = await api.request("DELETE", f"/v1/archives/{archive['id']}/files/{bread['id']}")
    assert removed.status_code == 204
    assert all(hit["filename"] != "bread.txt" for hit in await search(api, archive["id"], "sourdough starter"))
    assert (await api.request("GET", f"/v1/files/{bread['id']}")).status_code == 200  # the file itself stays

    monkeypatch.setenv("AGENTADAPTER_EMBEDDING_MODEL", "local/embed/all-MiniLM-L6-v2")
    assert api.state.knowledge is not None
    api.state.knowledge.settings.embedding_model = "local/embed/all-MiniLM-L6-v2"
    reindexed = await api.request("POST", f"/v1/archives/{archive['id']}/reindex")
    assert reindexed.status_code == 202 and reindexed.json()["queued"] == 1
    await api.state.knowledge.wait_idle()
    status = await statuses(api, archive["id"])
    assert status["tides.md"]["status"] == "ready"
    assert status["tides.md"]["embedding_model"] == "local/embed/all-MiniLM-L6-v2"
    assert (await search(api, archive["id"], "moon gravity"))[0]["filename"] == "tides.md"

    deleted = await api.request("DELETE", f"/v1/archives/{archive['id']}")
    assert deleted.status_code == 204
    assert (await api.request("GET", f"/v1/archives/{archive['id']}")).status_code == 404
    assert (await api.request("GET", f"/v1/files/{tides['id']}")).status_code == 200

    import agentadapter.service.knowledge as runtime

    monkeypatch.setattr(runtime, "missing_dependencies", lambda: ["pypdf"])
    refused = await api.request("POST", "/v1/files", files={"file": ("x.txt", b"new bytes")})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "knowledge_not_installed"


async def test_a_restart_resumes_queued_files_and_takes_back_those_a_dead_process_left(api: Api) -> None:
    from datetime import timedelta

    import sqlalchemy as sa

    from agentadapter.service import archives as archive_service
    from agentadapter.service.common import Caller
    from agentadapter.store.files_models import ArchiveFile
    from agentadapter.store.models import utcnow

    tides = await upload(api, "tides.md", TIDES)
    bread = await upload(api, "bread.txt", BAKING)
    created = (await api.request("POST", "/v1/archives", json={"name": "resumed"})).json()
    knowledge = api.state.knowledge
    assert knowledge is not None
    tenant = await api.tenant()
    async with api.state.db.write_session() as session:  # as if the process stopped before ingesting
        rows = await archive_service.add_files(session, knowledge, Caller.system(tenant.id), uuid.UUID(created["id"]),
                                               [uuid.UUID(tides["id"]), uuid.UUID(bread["id"])], enqueue=False)
        await session.execute(sa.update(ArchiveFile).where(ArchiveFile.id == rows[1].id).values(
            status="processing", updated_at=utcnow() - timedelta(hours=1)))  # its process died mid-way
        await session.commit()
    assert {r["status"] for r in (await statuses(api, created["id"])).values()} == {"queued", "processing"}
    await knowledge.start()  # what the next server start does
    await knowledge.wait_idle()
    assert {r["status"] for r in (await statuses(api, created["id"])).values()} == {"ready"}


async def test_an_upload_may_be_larger_than_a_json_body(api: Api) -> None:
    # 1.5 MiB: over the JSON body limit (AGENTADAPTER_MAX_BODY_BYTES, 1 MiB), under the upload limit.
    big = (TIDES + b"\n") * (1_572_864 // (len(TIDES) + 1))
    stored = await upload(api, "big.md", big)
    assert stored["size_bytes"] == len(big)
    json_body = await api.request("POST", "/v1/agents", json={"name": "x", "instructions": "y" * 1_572_864})
    assert json_body.status_code == 413
    assert "AGENTADAPTER_MAX_BODY_BYTES" in json_body.json()["error"]["message"]
