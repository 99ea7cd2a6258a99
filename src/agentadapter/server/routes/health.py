"""``/healthz`` (the process answers), ``/readyz`` (it can serve: database, and Redis when configured),
``/metrics`` (Prometheus). While the process drains (SIGTERM, :mod:`agentadapter.server.drain`), ``/readyz``
answers 503 ``draining`` at once, without asking anything, so a load balancer stops sending. Outside
``/v1``, for orchestrators and scrapers: the first two without
authentication; ``/metrics`` asks for ``Authorization: Bearer <AGENTADAPTER_METRICS_TOKEN>`` when
that is set, and always shows bounded label values (``server/metrics_labels.py``: no tenant's model,
agent or path names, whoever scrapes)."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from agentadapter.observability.metrics import RelabeledView
from agentadapter.observability.redact import redact_text
from agentadapter.server.deps import StateDep
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.metrics_labels import KnownLabels, label_policy

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> Response:
    """Readiness: the database answers, and Redis too when AGENTADAPTER_REDIS_URL is set (503 otherwise).

    Redis is asked through the process's Redis owner (built at start-up): a probe opens no client
    and no pool of its own, so frequent probes cost one pooled PING each."""
    if state.drain is not None and state.drain.started.is_set():
        return JSONResponse({"status": "draining", "checks": {}, "executor": state.executor.name,
                             "active_runs": state.executor.active}, status_code=503)
    checks: dict[str, Any] = {}
    ok = state.ready
    started = time.perf_counter()
    try:
        async with asyncio.timeout(5):
            await state.db.ping()
        checks["database"] = {"status": "ok", "dialect": state.db.dialect,
                              "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:
        ok = False
        checks["database"] = {"status": "error", "error": f"{type(exc).__name__}: {redact_text(str(exc))}"}
    if state.redis is not None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(5):
                await state.redis.ping()
            checks["redis"] = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        except Exception as exc:
            ok = False
            checks["redis"] = {"status": "error", "error": f"{type(exc).__name__}: {redact_text(str(exc))}"}
    body = {"status": "ok" if ok else "unavailable", "checks": checks, "executor": state.executor.name,
            "active_runs": state.executor.active}
    return JSONResponse(body, status_code=200 if ok else 503)


def _check_metrics_token(request: Request, state: StateDep) -> None:
    token = state.server.metrics_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPProblem(401, "/metrics needs Authorization: Bearer <the AGENTADAPTER_METRICS_TOKEN the operator "
                               "set>; configure the scraper with it (Prometheus: authorization.credentials)",
                          code="invalid_metrics_token", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus metrics: HTTP requests and latency, runs, model calls, the message bus.

    Label values that came from requests are bounded (see ``server/metrics_labels.py``).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    _check_metrics_token(request, state)
    known = KnownLabels.of(state.llm.file_config, online_endpoints=state.settings.agent_online_endpoints,
                           tools=state.tools.names())
    return Response(generate_latest(RelabeledView(label_policy(known))), media_type=CONTENT_TYPE_LATEST)
