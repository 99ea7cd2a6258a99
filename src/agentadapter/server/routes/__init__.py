"""The routers: one per resource, each under ``/v1`` (``API_PREFIX``), and the operational endpoints
outside it (``health.py``)."""

from __future__ import annotations

from fastapi import APIRouter

from agentadapter.server.routes import agent_types as agent_type_routes
from agentadapter.server.routes import agents, audit, gateway, provider_keys, providers, runs, settings, workflows
from agentadapter.server.routes import archives as archive_routes
from agentadapter.server.routes import compliance as compliance_routes
from agentadapter.server.routes import credits as credit_routes
from agentadapter.server.routes import datasets as dataset_routes
from agentadapter.server.routes import embeddings as embedding_routes
from agentadapter.server.routes import experiments as experiment_routes
from agentadapter.server.routes import export as export_routes
from agentadapter.server.routes import files as file_routes
from agentadapter.server.routes import messages as message_routes
from agentadapter.server.routes import responses as response_routes
from agentadapter.server.routes import threads as thread_routes
from agentadapter.server.routes import usage as usage_routes
from agentadapter.server.routes._prefix import API_PREFIX

__all__ = ["API_PREFIX", "resource_routers"]

resource_routers: tuple[APIRouter, ...] = (
    gateway.router,  # first: the busiest path, matched before the other routes are tried
    embedding_routes.router,
    message_routes.router,
    response_routes.router,
    agent_type_routes.router,
    agents.router, runs.router, workflows.router, settings.router, providers.router, provider_keys.router, audit.router,
    export_routes.router,
    usage_routes.router, credit_routes.router, file_routes.router, archive_routes.router,
    dataset_routes.router, experiment_routes.router, compliance_routes.router, thread_routes.router,
)
"""Mounted one by one on the app rather than through a parent router: one level of routing less per request."""
