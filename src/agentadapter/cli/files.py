"""``agentadapter files add|list|rm`` and ``agentadapter archives create|add|files|search``, from the operator's
command line, for one tenant (``--tenant NAME``).

``files add PATH... [--archive NAME]`` uploads files as the API does (size limit, scanning, type from the
content, deduplication) and, with ``--archive``, adds them to that archive and ingests them at once, in
this process, printing each file's status. Every change is audited with the actor ``cli``. The
embedding model and storage are the operator's settings (``AGENTADAPTER_EMBEDDING_MODEL``,
``AGENTADAPTER_FILES_URL``); the model is reached through the operator's configuration (``LLM()``).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentadapter.cli.common import EXIT_USAGE, fail, find_tenant_id, out, with_database
from agentadapter.cli.tables import Column, show_table

if TYPE_CHECKING:
    from agentadapter.service.knowledge import Knowledge
    from agentadapter.store.database import Database

__all__ = ["archives_app", "files_app", "register"]

files_app = typer.Typer(name="files", help="A tenant's files: add, list, rm.", no_args_is_help=True)
archives_app = typer.Typer(name="archives", help="A tenant's archives of files: create, add, files, search.",
                           no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="the tenant's name")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def register(app: typer.Typer) -> None:
    """Add ``files`` and ``archives`` to ``app``."""
    app.add_typer(files_app)
    app.add_typer(archives_app)


def _knowledge(db: Database) -> Knowledge:
    from agentadapter.config import get_settings
    from agentadapter.knowledge import missing_dependencies
    from agentadapter.llm.client import LLM
    from agentadapter.service.knowledge import Knowledge

    missing = missing_dependencies()
    if missing:
        # Reported like any other missing extra (exit 2, and how to install it), not as the service's 503.
        module = {"python-docx": "docx"}.get(missing[0], missing[0])
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)
    return Knowledge.of(db, LLM(), get_settings().data_dir)


def _emit(value: Any, as_json: bool, text: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(value, default=str) + "\n")
    else:
        out.print(text)


@files_app.command("add")
def files_add(
    paths: Annotated[list[Path], typer.Argument(help="files to upload", exists=True, dir_okay=False, readable=True)],
    tenant: TenantOption,
    archive: Annotated[str | None, typer.Option("--archive", "-a", help="add them to this archive and ingest "
                                                                        "them now")] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload files (deduplicated by content); with --archive, index them there at once."""
    from agentadapter.service import archives as archive_service
    from agentadapter.service import files as file_service
    from agentadapter.service.common import Caller
    from agentadapter.store import archives as archive_store

    async def work(db: Database) -> list[dict[str, Any]]:
        knowledge = _knowledge(db)
        try:
            results: list[dict[str, Any]] = []
            async with db.write_session() as session:
                tenant_id = await find_tenant_id(session, tenant)
                caller = Caller.system(tenant_id)
                target = None
                if archive is not None:
                    target = (await archive_service.resolve_archives(session, tenant_id, [archive],
                                                                     param="--archive"))[0]
                for path in paths:
                    upload = await file_service.upload_file(session, knowledge, caller, filename=path.name,
                                                            data=path.read_bytes())
                    results.append({"id": str(upload.file.id), "filename": upload.file.filename,
                                    "media_type": upload.file.media_type, "size_bytes": upload.file.size_bytes,
                                    "created": upload.created})
                if target is not None:
                    rows = await archive_service.add_files(session, knowledge, caller, target.id,
                                                           [uuid.UUID(r["id"]) for r in results], enqueue=False)
            if target is not None:
                for row in rows:  # here and now, not in the background: this process ends after the command
                    await knowledge.ingest(row.id)
                async with db.session() as session:
                    status = {str(f.id): (af.status, af.error, af.chunk_count)
                              for af, f in await archive_store.archive_files(session, tenant_id, target.id)}
                for result in results:
                    result["status"], result["error"], result["chunks"] = status[result["id"]]
            return results
        finally:
            await knowledge.llm.aclose()

    results = with_database(work)
    lines = []
    for r in results:
        line = f"{r['id']}  {r['filename']}  {r['media_type']}  {r['size_bytes']} bytes" + (
            "" if r["created"] else "  (already there)")
        if "status" in r:
            line += f"  {r['status']}" + (f" ({r['chunks']} chunks)" if r["status"] == "ready" else
                                          f": {(r['error'] or {}).get('message', '')}")
        lines.append(line)
    _emit(results, as_json, "\n".join(lines))
    if any(r.get("status") == "failed" for r in results):
        raise typer.Exit(1)


@files_app.command("list")
def files_list(tenant: TenantOption, limit: Annotated[int, typer.Option(
        min=1, max=100, help="list at most this many files, newest first")] = 50,
               as_json: JsonOption = False) -> None:
    """The tenant's files, newest first."""
    from agentadapter.store import files as file_store

    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.session() as session:
            tenant_id = await find_tenant_id(session, tenant)
            page = await file_store.list_files(session, tenant_id, limit=limit)
            return [{"id": str(f.id), "filename": f.filename, "media_type": f.media_type, "size_bytes": f.size_bytes,
                     "sha256": f.sha256, "created_at": f.created_at.isoformat()} for f in page.items]

    files = with_database(work)
    if as_json:
        _emit(files, True, "")
        return
    show_table(out, [Column("id"), Column("name"), Column("type"), Column("bytes", numeric=True), Column("added")],
               [[f["id"], f["filename"], f["media_type"], str(f["size_bytes"]), f["created_at"][:19]] for f in files],
               title=f"Files of {tenant}")


@files_app.command("rm")
def files_rm(file_id: Annotated[str, typer.Argument(help="the file's id")], tenant: TenantOption) -> None:
    """Delete a file (from every archive too)."""
    from agentadapter.service import files as file_service
    from agentadapter.service.common import Caller

    try:
        parsed = uuid.UUID(file_id)
    except ValueError:
        raise fail(f"{file_id!r} is not a file id; see `agentadapter files list --tenant {tenant}`",
                   EXIT_USAGE) from None

    async def work(db: Database) -> None:
        knowledge = _knowledge(db)
        async with db.write_session() as session:
            tenant_id = await find_tenant_id(session, tenant)
            await file_service.delete_file(session, knowledge, Caller.system(tenant_id), parsed)

    with_database(work)
    out.print(f"deleted file {file_id}")


@archives_app.command("create")
def archives_create(name: Annotated[str, typer.Argument(help="the archive's name")], tenant: TenantOption,
                    description: Annotated[str, typer.Option(help="what it holds")] = "",
                    as_json: JsonOption = False) -> None:
    """Create an archive (embedded with AGENTADAPTER_EMBEDDING_MODEL)."""
    from agentadapter.service import archives as archive_service
    from agentadapter.service.common import Caller

    async def work(db: Database) -> dict[str, Any]:
        knowledge = _knowledge(db)
        async with db.write_session() as session:
            tenant_id = await find_tenant_id(session, tenant)
            archive = await archive_service.create_archive(session, knowledge, Caller.system(tenant_id), name=name,
                                                           description=description)
            return {"id": str(archive.id), "name": archive.name, "embedding_model": archive.embedding_model}

    created = with_database(work)
    _emit(created, as_json, f"created archive {created['name']} ({created['id']}), embedded with "
                            f"{created['embedding_model']}")


@archives_app.command("search")
def archives_search(
    archive: Annotated[str, typer.Argument(help="the archive's name or id")],
    query: Annotated[str, typer.Argument(help="what to look for")],
    tenant: TenantOption,
    k: Annotated[int, typer.Option("--max-results", "-k", min=1, max=50, help="passages to show")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Hybrid search of an archive: passages with their file, page or section, and score."""
    from agentadapter.service import archives as archive_service

    async def work(db: Database) -> list[dict[str, Any]]:
        knowledge = _knowledge(db)
        try:
            async with db.session() as session:
                tenant_id = await find_tenant_id(session, tenant)
                found = await archive_service.resolve_archives(session, tenant_id, [archive], param="archive")
            hits = await archive_service.search_archives(knowledge, tenant_id, found, query, k=k)
            return [hit.to_dict() for hit in hits]
        finally:
            await knowledge.llm.aclose()

    hits = with_database(work)
    if as_json:
        _emit(hits, True, "")
        return
    if not hits:
        out.print(f"nothing in {archive} matches {query!r}")
        return
    show_table(out, [Column("#", numeric=True), Column("file"), Column("where"), Column("passage")],
               [[str(i), h["filename"], f"p. {h['page']}" if h["page"] else (h["section"] or "-"),
                 " ".join(h["text"].split())[:160]] for i, h in enumerate(hits, 1)],
               title=f"{archive}: {query}")
