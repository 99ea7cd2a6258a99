"""The HTTP service: FastAPI, versioned under ``/v1``, on the store's database.

``create_app()`` (``app.py``) builds the application; its state is made in the lifespan. One router
per resource in ``routes/`` (agents, runs with SSE events, workflows, settings, providers, audit
logs), ``/healthz``, ``/readyz`` and ``/metrics`` outside ``/v1``. Routes validate with the schemas
(``schemas/``, one module per resource), take their dependencies from ``deps.py``, call a function
of ``services/`` and shape the reply; ``auth.py`` turns API keys and JWTs into a tenant, user and role; ``executor.py``
runs agents in the background; every error has one shape (``errors.py``). This layer sits on top:
it imports the orchestrator, agents, adapter and store, and nothing imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentadapter.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from agentadapter.server.app import create_app

        return create_app
    raise AttributeError(f"module 'agentadapter.server' has no attribute {name!r}")
