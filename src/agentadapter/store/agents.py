"""Agent definitions, their version history, and clones - always within one tenant.

A definition's spec (:data:`SPEC_FIELDS`: model, instructions, tools, handoffs, guardrails, output
schema, ...) is versioned: creating one writes version 1, and an update that changes the spec writes
the next version (renaming or re-describing alone does not). A run records the version it ran, so
``GET /v1/agents/{id}/versions/{n}`` shows exactly what ran. A clone copies the current spec into a
new definition with its own history. Names are unique per tenant because handoffs name agents.
Validation of the spec itself (known tools, a valid output schema) is the caller's job; this module
only stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from agentadapter.store.errors import RecordConflict, RecordNotFound
from agentadapter.store.models import AgentDefinition, AgentVersion, utcnow
from agentadapter.store.pagination import Page, paginate

__all__ = [
    "SPEC_FIELDS",
    "agent_spec",
    "clone_agent",
    "create_agent",
    "delete_agent",
    "find_agents",
    "get_agent",
    "get_agent_version",
    "list_agent_versions",
    "list_agents",
    "read_agent",
    "update_agent",
]

SPEC_FIELDS = (
    "model", "instructions", "tools", "handoffs", "guardrails", "output_schema", "model_settings", "max_turns",
    "mcp_servers",
)
"""The fields whose change makes a new version."""
_OTHER_FIELDS = ("description", "meta")


def agent_spec(agent: AgentDefinition) -> dict[str, Any]:
    """The definition as it would be versioned (name and description included)."""
    spec: dict[str, Any] = {"name": agent.name, "description": agent.description}
    spec.update({name: getattr(agent, name) for name in SPEC_FIELDS})
    return spec


_NAME_TAKEN = sa.select(AgentDefinition.__table__.c.id).where(
    AgentDefinition.__table__.c.tenant_id == sa.bindparam("tenant_id"),
    AgentDefinition.__table__.c.name == sa.bindparam("name"),
    AgentDefinition.__table__.c.id != sa.bindparam("exclude"))


async def _name_taken(session: AsyncSession, tenant_id: uuid.UUID, name: str, exclude: uuid.UUID | None) -> bool:
    # exclude: the agent being renamed; a fresh id (which no row has) when there is none.
    found = await session.execute(_NAME_TAKEN, {"tenant_id": tenant_id, "name": name,
                                                 "exclude": exclude or uuid.uuid4()})
    return found.first() is not None


def _taken(name: str) -> RecordConflict:
    return RecordConflict(f"an agent named {name!r} exists already in this tenant; pick another name "
                          "(handoffs name agents, so names are unique)", param="name")


async def create_agent(
    session: AsyncSession, tenant_id: uuid.UUID, *, name: str, created_by: uuid.UUID | None = None,
    **fields: Any,
) -> AgentDefinition:
    """A new definition and its version 1."""
    unknown = set(fields) - set(SPEC_FIELDS) - set(_OTHER_FIELDS)
    if unknown:
        raise ValueError(f"unknown agent fields {sorted(unknown)}")
    if await _name_taken(session, tenant_id, name, None):
        raise _taken(name)
    now = utcnow()
    values: dict[str, Any] = {"id": uuid.uuid4(), "tenant_id": tenant_id, "name": name, "created_by": created_by,
                              "version": 1, "model": None, "output_schema": None, "max_turns": None,
                              "created_at": now, "updated_at": now, **_with_defaults(fields)}
    # Two plain INSERTs rather than the unit of work's flush (most of a create's time); the object handed
    # back is built from the same values, as a freshly loaded one would read.
    await session.execute(_INSERT_AGENT, {_COLUMN_OF[key]: value for key, value in values.items()})
    agent = AgentDefinition(**values)
    await session.execute(_INSERT_VERSION, {"id": uuid.uuid4(), "tenant_id": tenant_id, "agent_id": agent.id,
                                            "version": 1, "spec": agent_spec(agent), "created_by": created_by,
                                            "created_at": now})
    return agent


def _with_defaults(fields: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"description": "", "instructions": "", "tools": [], "handoffs": [], "guardrails": [],
                              "model_settings": {}, "meta": {}, "mcp_servers": []}
    values.update({k: v for k, v in fields.items() if v is not None or k in ("model", "output_schema", "max_turns")})
    return values


_TABLE: sa.Table = AgentDefinition.__table__  # type: ignore[assignment]  # declarative: a Table
_COLUMN_OF = {attribute.key: attribute.columns[0].name for attribute in sa.inspect(AgentDefinition).column_attrs}
_INSERT_AGENT = sa.insert(_TABLE)
_VERSIONS: sa.Table = AgentVersion.__table__  # type: ignore[assignment]
_INSERT_VERSION = sa.insert(_VERSIONS)
# The columns under their attribute names (``meta``, not ``metadata``): what read_agent and list_agents
# give as dicts, which the API's response models read as they would read the ORM object.
_COLUMNS = tuple(_TABLE.c[attribute.columns[0].name].label(attribute.key)
                 for attribute in sa.inspect(AgentDefinition).column_attrs)
# Built once: a statement made per call costs more to construct and to key for the compiled cache
# than SQLite takes to answer it.
_READ_AGENT = sa.select(*_COLUMNS).where(_TABLE.c.tenant_id == sa.bindparam("tenant_id"),
                                         _TABLE.c.id == sa.bindparam("agent_id"))


async def read_agent(session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> dict[str, Any]:
    """The agent's columns (by attribute name), for reading only: no ORM object is built."""
    row = (await session.execute(_READ_AGENT, {"tenant_id": tenant_id, "agent_id": agent_id})).mappings().first()
    if row is None:
        raise RecordNotFound("agent", agent_id)
    return dict(row)


async def get_agent(session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> AgentDefinition:
    agent: AgentDefinition | None = await session.scalar(
        sa.select(AgentDefinition).where(AgentDefinition.tenant_id == tenant_id, AgentDefinition.id == agent_id)
    )
    if agent is None:
        raise RecordNotFound("agent", agent_id)
    return agent


async def find_agents(
    session: AsyncSession, tenant_id: uuid.UUID, refs: Iterable[str]
) -> dict[str, AgentDefinition]:
    """The tenant's agents that these names or ids refer to, by the reference (missing ones left out)."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}  # no query: most agents hand off to nobody
    ids = {ref: parsed for ref in refs if (parsed := _as_uuid(ref)) is not None}
    conditions = [AgentDefinition.name.in_(refs)]
    if ids:
        conditions.append(AgentDefinition.id.in_(list(ids.values())))
    rows = (await session.scalars(
        sa.select(AgentDefinition).where(AgentDefinition.tenant_id == tenant_id, sa.or_(*conditions))
    )).all()
    by_name = {row.name: row for row in rows}
    by_id = {row.id: row for row in rows}
    found: dict[str, AgentDefinition] = {}
    for ref in refs:
        row = by_name.get(ref) or (by_id.get(ids[ref]) if ref in ids else None)
        if row is not None:
            found[ref] = row
    return found


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def list_agents(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None,
    name: str | None = None, model: str | None = None, tool: str | None = None,
) -> Page[dict[str, Any]]:
    """The tenant's agents, newest first; ``name`` matches a part of the name, ``model`` exactly.

    Items are dicts of the agent's columns by attribute name (no ORM objects: lists are the hot path).
    """
    statement = sa.select(*_COLUMNS).where(_TABLE.c.tenant_id == tenant_id)
    if name:
        pattern = "%" + _like_escape(name) + "%"
        statement = statement.where(_TABLE.c.name.ilike(pattern, escape="\\"))
    if model:
        statement = statement.where(_TABLE.c.model == model)
    if tool:
        # JSON containment differs between databases (and PostgreSQL's json has none); the stored
        # JSON text of a list of names holds '"name"' exactly when the list does.
        quoted = '%"' + _like_escape(tool) + '"%'
        statement = statement.where(sa.cast(_TABLE.c.tools, sa.Text).like(quoted, escape="\\"))
    page: Page[dict[str, Any]] = await paginate(session, statement, _TABLE.c, limit=limit, cursor=cursor, rows=True)
    return page


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def update_agent(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID, changes: Mapping[str, Any], *,
    updated_by: uuid.UUID | None = None,
) -> AgentDefinition:
    """Apply ``changes``; a change to the spec writes the next version."""
    unknown = set(changes) - set(SPEC_FIELDS) - set(_OTHER_FIELDS) - {"name"}
    if unknown:
        raise ValueError(f"unknown agent fields {sorted(unknown)}")
    agent = await get_agent(session, tenant_id, agent_id)
    new_name = changes.get("name")
    if new_name is not None and new_name != agent.name and await _name_taken(session, tenant_id, new_name, agent.id):
        raise _taken(new_name)
    before = agent_spec(agent)
    for field_name, value in changes.items():
        setattr(agent, field_name, value)
    after = agent_spec(agent)
    if any(before[f] != after[f] for f in SPEC_FIELDS):
        agent.version += 1
        session.add(AgentVersion(id=uuid.uuid4(), tenant_id=tenant_id, agent_id=agent.id, version=agent.version,
                                 spec=after, created_by=updated_by))
    await session.flush()
    return agent


async def delete_agent(session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """Delete the definition and its versions (runs keep their records, without the link)."""
    agent = await get_agent(session, tenant_id, agent_id)
    await session.delete(agent)
    await session.flush()


async def clone_agent(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, name: str | None = None,
    created_by: uuid.UUID | None = None,
) -> AgentDefinition:
    """A copy of the agent's current spec under a new name (default ``<name>-copy``, ``-copy-2``, ...)."""
    source = await get_agent(session, tenant_id, agent_id)
    if name is None:
        base = f"{source.name}-copy"[:100]
        name, number = base, 1
        while await _name_taken(session, tenant_id, name, None):
            number += 1
            name = f"{base[:94]}-{number}"
    fields = {f: getattr(source, f) for f in SPEC_FIELDS}
    meta = dict(source.meta or {})
    meta["cloned_from"] = {"id": str(source.id), "version": source.version}
    return await create_agent(session, tenant_id, name=name, created_by=created_by, description=source.description,
                              meta=meta, **fields)


async def list_agent_versions(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID
) -> Sequence[AgentVersion]:
    await get_agent(session, tenant_id, agent_id)
    statement = (sa.select(AgentVersion)
                 .where(AgentVersion.tenant_id == tenant_id, AgentVersion.agent_id == agent_id)
                 .order_by(AgentVersion.version.desc()))
    return (await session.scalars(statement)).all()


async def get_agent_version(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID, version: int
) -> AgentVersion:
    row: AgentVersion | None = await session.scalar(
        sa.select(AgentVersion).where(AgentVersion.tenant_id == tenant_id, AgentVersion.agent_id == agent_id,
                                      AgentVersion.version == version)
    )
    if row is None:
        raise RecordNotFound(f"version {version} of agent", agent_id)
    return row
