"""A tenant's data as one JSON document, written piece by piece.

:func:`export_tenant` is an async generator of JSON text chunks: concatenated they are one object
with a section per kind of data - the tenant, projects, users (each with its settings), API keys
(metadata), agents (each with its versions), workflows, runs (each with its agent runs, bus
messages and events), threads (conversations, their messages as stored), usage records, audit
log, provider keys (id, provider, name and hint: never the ciphertext), the credit account with its
transactions, and the compliance records: the users' consents, the erasures asked for and the
tenant's compliance policy (without its hash key). Rows are read in keyset batches of a few
hundred, each batch in its own short read, so a large tenant never sits in memory nor holds a
connection while the reader is slow; the document is therefore not a snapshot of one instant.
``agentadapter tenants export`` and ``GET /v1/export`` both stream it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from agentadapter.store.compliance_models import CompliancePolicy, ErasureRequest, UserConsent
from agentadapter.store.database import Database
from agentadapter.store.errors import RecordNotFound
from agentadapter.store.models import (
    AgentDefinition,
    AgentMessage,
    AgentRun,
    AgentVersion,
    ApiKey,
    AuditLog,
    CreditAccount,
    CreditTransaction,
    Project,
    ProviderKey,
    Run,
    RunEventRow,
    Tenant,
    UsageRecord,
    User,
    UserSettings,
    Workflow,
)
from agentadapter.store.threads_models import Thread

__all__ = ["EXPORT_FORMAT", "SECTIONS", "export_tenant"]

EXPORT_FORMAT = "agentadapter.tenant-export/1"
BATCH_SIZE = 500

SECTIONS = ("tenant", "projects", "users", "api_keys", "agents", "workflows", "runs", "threads", "usage_records",
            "audit_logs", "provider_keys", "credit_account", "credit_transactions", "consents", "erasures",
            "compliance_policy")
"""The document's sections, in order."""

# Secrets never leave the database: a key's hash and a provider key's ciphertext are left out.
_HIDDEN: Mapping[str, frozenset[str]] = {
    ApiKey.__tablename__: frozenset({"key_hash"}),
    ProviderKey.__tablename__: frozenset({"ciphertext"}),
    CompliancePolicy.__tablename__: frozenset({"hash_key"}),
}


def _value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _columns(model: Any) -> list[sa.Column[Any]]:
    table = model.__table__
    hidden = _HIDDEN.get(table.name, frozenset())
    return [column for column in table.columns if column.name not in hidden]


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {name: _value(value) for name, value in row.items()}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_value, separators=(",", ":"))


class _Reader:
    def __init__(self, db: Database, tenant_id: uuid.UUID, batch_size: int) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.batch_size = batch_size

    async def rows(self, model: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """The tenant's rows of ``model`` in batches, by id (keyset: every batch is one short query)."""
        table = model.__table__
        after: uuid.UUID | None = None
        while True:
            statement = sa.select(*_columns(model)).where(table.c.tenant_id == self.tenant_id)
            if after is not None:
                statement = statement.where(table.c.id > after)
            statement = statement.order_by(table.c.id).limit(self.batch_size)
            async with self.db.session() as session:
                batch = [dict(row) for row in (await session.execute(statement)).mappings()]
            if batch:
                yield batch
            if len(batch) < self.batch_size:
                return
            after = batch[-1]["id"]

    async def children(self, model: Any, parent: str, ids: Sequence[Any],
                       order: Sequence[str]) -> dict[Any, list[dict[str, Any]]]:
        """The rows of ``model`` whose ``parent`` column is one of ``ids``, grouped by it."""
        table = model.__table__
        statement = (sa.select(*_columns(model)).where(table.c[parent].in_(ids), table.c.tenant_id == self.tenant_id)
                     .order_by(*(table.c[name] for name in order)))
        grouped: dict[Any, list[dict[str, Any]]] = {key: [] for key in ids}
        async with self.db.session() as session:
            for row in (await session.execute(statement)).mappings():
                grouped[row[parent]].append(_plain(row))
        return grouped


async def export_tenant(db: Database, tenant_id: uuid.UUID, *, batch_size: int = BATCH_SIZE) -> AsyncIterator[str]:
    """The tenant's data as JSON text chunks (see the module docstring for the sections)."""
    reader = _Reader(db, tenant_id, batch_size)
    async with db.session() as session:
        tenant = (await session.execute(sa.select(*_columns(Tenant)).where(Tenant.id == tenant_id))).mappings().first()
        account = (await session.execute(sa.select(*_columns(CreditAccount))
                                         .where(CreditAccount.tenant_id == tenant_id))).mappings().first()
    if tenant is None:
        raise RecordNotFound("tenant", tenant_id)
    yield (f'{{"format":{_dumps(EXPORT_FORMAT)},"exported_at":{_dumps(datetime.now(UTC))},'
           f'"tenant":{_dumps(_plain(tenant))}')
    async for chunk in _section("projects", _flat(reader, Project)):
        yield chunk
    async for chunk in _section("users", _with(reader, User, UserSettings, "user_id", ("user_id",), "settings",
                                                 single=True)):
        yield chunk
    async for chunk in _section("api_keys", _flat(reader, ApiKey)):
        yield chunk
    async for chunk in _section("agents", _with(reader, AgentDefinition, AgentVersion, "agent_id",
                                                  ("agent_id", "version"), "versions")):
        yield chunk
    async for chunk in _section("workflows", _flat(reader, Workflow)):
        yield chunk
    async for chunk in _section("runs", _runs(reader)):
        yield chunk
    async for chunk in _section("threads", _flat(reader, Thread)):
        yield chunk
    async for chunk in _section("usage_records", _flat(reader, UsageRecord)):
        yield chunk
    async for chunk in _section("audit_logs", _flat(reader, AuditLog)):
        yield chunk
    async for chunk in _section("provider_keys", _flat(reader, ProviderKey)):
        yield chunk
    yield f',"credit_account":{_dumps(_plain(account) if account is not None else None)}'
    async for chunk in _section("credit_transactions", _flat(reader, CreditTransaction)):
        yield chunk
    async for chunk in _section("consents", _flat(reader, UserConsent)):
        yield chunk
    async for chunk in _section("erasures", _flat(reader, ErasureRequest)):
        yield chunk
    async with db.session() as session:
        policy = (await session.execute(sa.select(*_columns(CompliancePolicy))
                                        .where(CompliancePolicy.tenant_id == tenant_id))).mappings().first()
    yield f',"compliance_policy":{_dumps(_plain(policy) if policy is not None else None)}'
    yield "}\n"


async def _section(name: str, batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[str]:
    yield f',{_dumps(name)}:['
    first = True
    async for batch in batches:
        if not batch:
            continue
        text = ",".join(_dumps(item) for item in batch)
        yield text if first else "," + text
        first = False
    yield "]"


async def _flat(reader: _Reader, model: Any) -> AsyncIterator[list[dict[str, Any]]]:
    async for batch in reader.rows(model):
        yield [_plain(row) for row in batch]


async def _with(reader: _Reader, model: Any, child: Any, parent: str, order: Sequence[str], key: str, *,
                single: bool = False) -> AsyncIterator[list[dict[str, Any]]]:
    async for batch in reader.rows(model):
        found = await reader.children(child, parent, [row["id"] for row in batch], order)
        items = []
        for row in batch:
            kids = found[row["id"]]
            items.append({**_plain(row), key: (kids[0] if kids else None) if single else kids})
        yield items


async def _runs(reader: _Reader) -> AsyncIterator[list[dict[str, Any]]]:
    async for batch in reader.rows(Run):
        ids = [row["id"] for row in batch]
        agent_runs = await reader.children(AgentRun, "run_id", ids, ("run_id", "step", "id"))
        messages = await reader.children(AgentMessage, "run_id", ids, ("run_id", "created_at", "id"))
        events = await reader.children(RunEventRow, "run_id", ids, ("run_id", "seq"))
        yield [{**_plain(row), "agent_runs": agent_runs[row["id"]], "messages": messages[row["id"]],
                "events": events[row["id"]]} for row in batch]
