"""The routers: one per resource, each under ``/v1`` (``API_PREFIX``), and the operational endpoints
outside it (``health.py``)."""

from __future__ import annotations

from fastapi import APIRouter

from agentadapter.server.routes import agents, audit, providers, runs, settings, workflows
from agentadapter.server.routes._prefix import API_PREFIX

__all__ = ["API_PREFIX", "resource_routers"]

resource_routers: tuple[APIRouter, ...] = (
    agents.router, runs.router, workflows.router, settings.router, providers.router, audit.router,
)
"""Mounted one by one on the app rather than through a parent router: one level of routing less per request."""
