"""The FastAPI application: :func:`create_app`, and the lifespan that builds the server's state.

Nothing is built at import. The lifespan, in order: refuses unsafe secrets outside development,
opens the database (a SQLite file in the data dir unless ``AGENTADAPTER_DATABASE_URL`` says
otherwise), migrates it to the newest revision, creates the ``default`` tenant with its default
user and settings on first start, closes runs a previous process left unfinished (only without
Redis, where this is the only process), and builds the process's one owner of Redis connections
(:class:`~agentadapter.redis_connections.RedisConnections`, when ``AGENTADAPTER_REDIS_URL`` is set), the
``LLM``, the tool registry, the executor and the authenticator - every part that uses Redis is
handed that owner. On SIGTERM it drains (:mod:`agentadapter.server.drain`: ``/readyz`` 503 at once, SSE
streams end, in-flight requests, then runs, get ``AGENTADAPTER_SHUTDOWN_GRACE_S``); runs still going
then are handed over (ended ``ServerShutdown``), and it closes everything, the Redis owner last.
``uvicorn --factory agentadapter.server.app:create_app`` and ``agentadapter serve`` both start it.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.middleware.cors import CORSMiddleware

from agentadapter.config import Settings, get_settings
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.shared import shared_state_from_settings
from agentadapter.redis_connections import RedisConnections
from agentadapter.server.auth import Authenticator
from agentadapter.server.drain import Drain
from agentadapter.server.errors import install_error_handlers
from agentadapter.server.executor import InlineExecutor, RunExecutor
from agentadapter.server.housekeeping import RetentionTask
from agentadapter.server.middleware import BodySizeLimit, JSONBodyGuard, RequestContext, SecurityHeaders, UploadLimit
from agentadapter.server.payloads import PayloadChecker, PayloadLimits
from agentadapter.server.ratelimit import build_rate_limiter
from agentadapter.server.routes import API_PREFIX, resource_routers
from agentadapter.server.routes.gateway import OPENAI_JSON_PATHS
from agentadapter.server.routes.health import router as health_router
from agentadapter.server.routes.home import DOCS_ASSETS_PATH, DOCS_PATH, REDOC_PATH
from agentadapter.server.routes.home import router as home_router
from agentadapter.server.schemas.errors import document_errors
from agentadapter.server.settings import ServerSettings, check_secrets
from agentadapter.server.state import AppState
from agentadapter.server.ui import router as ui_router
from agentadapter.service.tenancy import service_facades
from agentadapter.store import migrate, runs, tenants
from agentadapter.store.database import Database, PoolSettings, database_url
from agentadapter.store.usage import flush_ledger

if TYPE_CHECKING:
    from agentadapter.agents.tools.registry import ToolRegistry
    from agentadapter.llm.client import LLM

__all__ = ["create_app"]

logger = logging.getLogger("agentadapter.server")

_MULTIPART_FRAMING_BYTES = 64 * 1024
"""Room for the multipart boundaries and part headers around an uploaded file."""

API_DESCRIPTION = """Agents, runs, workflows and settings over any LLM backend.

Authenticate with `Authorization: Bearer <key>`: a tenant API key (`agentadapter keys create --tenant NAME`)
or a JWT. Errors always read `{"error": {"type", "message", "code", "param", "details"}}`."""


def create_app(
    settings: Settings | None = None,
    *,
    server_settings: ServerSettings | None = None,
    llm: LLM | None = None,
    tools: ToolRegistry | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The application. Everything it needs is built when it starts (its lifespan), not here.

    Tests pass their own ``settings`` (a temporary database), an offline ``llm`` or ``tools``, and a
    transport that serves the JWKS.
    """
    settings = settings or get_settings()
    server = server_settings or ServerSettings()
    check_secrets(settings)

    # Large request bodies are checked in worker processes, started on first need and stopped with the app.
    body_checker = PayloadChecker(
        PayloadLimits(max_depth=server.max_body_depth, max_nodes=server.max_body_nodes,
                      max_string_chars=server.max_body_string_chars),
        offload_bytes=server.body_offload_bytes, processes=server.body_check_processes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await _start(settings, server, llm=llm, tools=tools, jwks_transport=jwks_transport)
        app.state.agentadapter = state
        from agentadapter.server.evals_loop import ContinuousEvaluation

        # Re-runs of attached experiments when their agent or workflow gets a new version (or on schedule).
        evaluation = ContinuousEvaluation(state)
        evaluation.start()
        try:
            yield
        finally:
            try:
                await evaluation.stop()
                await _stop(state, owns_llm=llm is None)
            finally:
                await body_checker.aclose()

    # /docs and /redoc load Swagger UI and ReDoc from assets in the package (fastapi-offline), never a CDN.
    app = FastAPIOffline(
        title="AgentAdapter", version=_version(), description=API_DESCRIPTION, lifespan=lifespan,
        docs_url=DOCS_PATH, redoc_url=REDOC_PATH, openapi_url="/openapi.json", static_url=DOCS_ASSETS_PATH,
    )
    install_error_handlers(app)
    app.include_router(home_router)
    app.include_router(health_router)
    for router in resource_routers:
        app.include_router(router)
    app.include_router(ui_router)  # the dashboard at /ui (server/ui/)
    _declare_bearer_auth(app)
    # Added innermost first: requests pass RequestContext, SecurityHeaders, CORS, the body limit, then the
    # body guard (which reads the body through the limit).
    app.add_middleware(JSONBodyGuard, checker=body_checker, openai_paths=OPENAI_JSON_PATHS,
                       yaml_fields={f"{API_PREFIX}/workflows": "yaml", f"{API_PREFIX}/datasets": "content"})
    # A file upload may be as large as the knowledge settings allow (plus the multipart framing around it).
    from agentadapter.service.knowledge import KnowledgeSettings

    upload = UploadLimit(KnowledgeSettings().files_max_bytes + _MULTIPART_FRAMING_BYTES,
                         "AGENTADAPTER_FILES_MAX_BYTES")
    app.add_middleware(BodySizeLimit, max_bytes=server.max_body_bytes, uploads={f"{API_PREFIX}/files": upload})
    if settings.cors_origins:
        wildcard = settings.cors_origins == ["*"]
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=not wildcard,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Location"], max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts=settings.env == "production")
    app.add_middleware(RequestContext)
    return app


def _declare_bearer_auth(app: FastAPI) -> None:
    """Show the bearer scheme in the OpenAPI document (and /docs' Authorize button) for /v1 routes, and the
    error responses each route can give (:mod:`agentadapter.server.schemas.errors`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A tenant API key (aa_..., from `agentadapter keys create`) or a JWT."}}
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(API_PREFIX + "/"):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            document_errors(schema, API_PREFIX)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentadapter")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0.0.0"


async def _start(settings: Settings, server: ServerSettings, *, llm: LLM | None, tools: ToolRegistry | None,
                 jwks_transport: Any) -> AppState:
    if settings.executor not in ("inline", "celery"):
        raise ConfigurationError(f"AGENTADAPTER_EXECUTOR={settings.executor} is unknown; use inline or celery")
    db = Database(database_url(settings), pool=PoolSettings())
    try:
        if server.migrate_on_start:
            revision = await migrate.upgrade(db)
            logger.info("database %r is at revision %s", db, revision)
        elif await migrate.current(db) != migrate.head():
            raise ConfigurationError(
                f"the database {db!r} is not at the newest revision ({migrate.head()}); run `agentadapter db upgrade`"
            )
        async with db.writer() as session:
            await tenants.ensure_tenant(session)
        if settings.redis_url is None and settings.executor == "inline":
            async with db.writer() as session:
                closed = await runs.fail_interrupted_runs(
                    session, "the server stopped while the run was in progress; start it again")
            if closed:
                logger.warning("marked %d run(s) left unfinished by a previous server process as failed", closed)
    except BaseException:
        await db.dispose()
        raise
    # The one owner of Redis connections (None without Redis): every part below that uses Redis is
    # handed it, none makes a client of its own.
    redis = RedisConnections.from_settings(settings)
    shared = shared_state_from_settings(settings, redis)
    if llm is None:
        from agentadapter.llm.client import LLM as LLMClass

        llm = LLMClass(shared=shared)
    if tools is None:
        from agentadapter.agents.tools.registry import default_registry

        tools = default_registry()
    if server.approval_tools:  # the operator's list of tools whose calls wait for a human's approval
        from agentadapter.service.approvals import require_approval

        require_approval(tools, server.approval_tools)
    relay = None
    protocol_factory = None
    if redis is not None:
        from functools import partial

        from agentadapter.protocol.protocol import create_protocol
        from agentadapter.server.executor import CancelRelay

        relay = CancelRelay(redis)
        # A run's protocol as the orchestrator would make it, but on this owner when it is on Redis.
        protocol_factory = partial(create_protocol, connections=redis)
    tenant_llms = await service_facades(llm, db, settings=settings, service=server, shared=shared)
    executor: RunExecutor
    if settings.executor == "celery":
        from agentadapter.service.celery_executor import CeleryExecutor

        executor = CeleryExecutor(db, settings, redis=redis)
    else:
        from agentadapter.server.run_leases import RunLeases

        leases = RunLeases(db, lease_s=server.run_lease_s, reaper_interval_s=server.run_reaper_interval_s)
        executor = InlineExecutor(db, llm, keep_finished=server.recent_runs, relay=relay, tenant_llms=tenant_llms,
                                  leases=leases, protocol_factory=protocol_factory)
    await executor.start()
    auth = Authenticator(db, settings, server, jwks_transport=jwks_transport, redis=redis)
    limiter = build_rate_limiter(server, redis)
    retention = None
    # With AGENTADAPTER_RETENTION_DAYS=0 the server keeps everything, but tenants' own retention periods and due
    # erasures still need the periodic task.
    if server.retention_interval_s > 0:
        retention = RetentionTask(db, retention_days=settings.retention_days, interval_s=server.retention_interval_s)
        retention.start()
    from agentadapter.service.knowledge import Knowledge

    knowledge = Knowledge.of(db, llm, settings.data_dir)
    await knowledge.start()  # resumes the ingestion of files queued before a restart
    if retention is not None:  # due erasures reach this server's file storage, Redis and caches too
        from agentadapter.service.compliance import erasure_parts

        retention.erasures = erasure_parts(db, storage=knowledge.storage,
                                           redis=redis.commands if redis is not None else None,
                                           forget=[lambda _tenant: auth.forget(), tenant_llms.invalidate])
    from agentadapter.service.compliance import ComplianceSettings

    if ComplianceSettings().log_personal_data == "mask":  # the operator keeps personal data out of the logs
        from agentadapter.compliance.logs import mask_logs

        mask_logs()
    drain = Drain(grace_s=server.shutdown_grace_s, delay_s=server.shutdown_delay_s)
    if drain.install():
        logger.info("SIGTERM drains the server: grace %.1f s, pre-stop delay %.1f s", server.shutdown_grace_s,
                    server.shutdown_delay_s)
    if server.gc_freeze:
        gc.collect()
        gc.freeze()
    return AppState(settings=settings, server=server, db=db, auth=auth, executor=executor, llm=llm, tools=tools,
                    tenant_llms=tenant_llms, limiter=limiter, retention=retention, shared=shared, redis=redis,
                    knowledge=knowledge, drain=drain, started_at=time.time(), ready=True)


async def _stop(state: AppState, *, owns_llm: bool) -> None:
    state.ready = False
    grace_s = 5.0
    if state.drain is not None:
        state.drain.begin()  # SSE streams still open end now
        grace_s = state.drain.remaining()
    try:
        if state.retention is not None:
            await state.retention.stop()
        await state.executor.shutdown(grace_s)
        if state.knowledge is not None:
            await state.knowledge.shutdown()
    finally:
        await state.auth.aclose()
        if state.limiter is not None:
            await state.limiter.aclose()
        if owns_llm:
            await state.llm.aclose()
        if state.shared is not None:
            await state.shared.aclose()
        if state.redis is not None:
            await state.redis.aclose()  # last: every part above was using it
        await flush_ledger(state.llm.ledger)
        await state.db.dispose()
        if state.drain is not None:
            state.drain.uninstall()
