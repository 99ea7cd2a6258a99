"""The service's database: SQLAlchemy 2.x async models, repositories, migrations, and the run recorder.

- :mod:`~agentadapter.store.models` - the tables (Tenant -> Project -> Run -> AgentRun and
  AgentMessage, AgentDefinition with versions, Workflow, User, UserSettings, ApiKey, AuditLog,
  persisted run events);
- :mod:`~agentadapter.store.database` - :class:`Database`: the engine (SQLite with WAL and a busy
  timeout by default, PostgreSQL through ``AGENTADAPTER_DATABASE_URL``), read and write sessions;
- :mod:`~agentadapter.store.migrate` - Alembic migrations run from code (``agentadapter db ...``);
- repositories, one module per resource (``tenants``, ``users``, ``api_keys``, ``agents``,
  ``workflows``, ``runs``, ``audit``): every query for tenant data goes through one of their
  functions, and each takes the tenant;
- :mod:`~agentadapter.store.secrets` - :class:`SecretBox`, Fernet encryption of the tenants' provider
  keys (``provider_keys``) under ``AGENTADAPTER_SECRET_KEY``;
- :class:`StoreRunRecorder` - the orchestrator's ``RunRecorder`` interface, implemented here.

The store sits beside the adapter in the layering: it imports the orchestrator's recorder interface
and result types, never the server. SQLAlchemy, Alembic and the drivers come with the ``server``
extra (``postgres`` adds asyncpg), so nothing here is imported by ``import agentadapter``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentadapter.store.database import Database, PoolSettings, database_url
    from agentadapter.store.errors import InvalidCursor, RecordConflict, RecordNotFound, StoreError
    from agentadapter.store.pagination import Page
    from agentadapter.store.recorder import StoreRunRecorder

__all__ = [
    "Database",
    "InvalidCursor",
    "Page",
    "PoolSettings",
    "RecordConflict",
    "RecordNotFound",
    "StoreError",
    "StoreRunRecorder",
    "database_url",
]

_WHERE = {
    "Database": "database", "PoolSettings": "database", "database_url": "database",
    "InvalidCursor": "errors", "RecordConflict": "errors", "RecordNotFound": "errors", "StoreError": "errors",
    "Page": "pagination", "StoreRunRecorder": "recorder",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentadapter.store' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"agentadapter.store.{module}"), name)
