"""``/healthz`` (the process answers), ``/readyz`` (it can serve: database, and Redis when configured),
``/metrics`` (Prometheus). Outside ``/v1`` and without authentication, for orchestrators and scrapers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from agentadapter.server.deps import StateDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and its event loop answers."""
    return {"status": "ok"}


async def _check_redis(url: str) -> None:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        await client.ping()
    finally:
        await client.aclose()


@router.get("/readyz")
async def readyz(state: StateDep) -> Response:
    """Readiness: the database answers, and Redis too when AGENTADAPTER_REDIS_URL is set (503 otherwise)."""
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
        checks["database"] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    if state.settings.redis_url:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(5):
                await _check_redis(state.settings.redis_url)
            checks["redis"] = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        except Exception as exc:
            ok = False
            checks["redis"] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    body = {"status": "ok" if ok else "unavailable", "checks": checks, "executor": state.executor.name,
            "active_runs": state.executor.active}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics: HTTP requests and latency, runs, model calls, the message bus."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
