"""A real HTTP server on loopback for tests, with recorded requests and injectable faults.

Provider fakes (``openai_server.py``, ...) add routes that speak a provider's wire format; this
module gives them the plumbing: start/stop on a free port, a record of every request received, and a
queue of faults (a status with a body and headers, a delay, a connection dropped mid-stream) that
the next requests meet before the normal handler runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    """What the next matching request meets instead of (or before) the normal answer."""

    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (or before the normal handler, when ``status`` is 0)."""
    raw: bytes | None = None
    """Send these bytes as the body with ``status`` (e.g. invalid JSON)."""
    drop: bool = False
    """Close the connection without answering."""


Handler = Callable[[web.Request, Recorded], Awaitable[web.StreamResponse]]


class FakeServer:
    """An aiohttp server on 127.0.0.1 with a free port."""

    def __init__(self) -> None:
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._routes: dict[tuple[str, str], Handler] = {}
        self._prefix_routes: list[tuple[str, str, Handler]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        if prefix:
            self._prefix_routes.append((method, path, handler))
        else:
            self._routes[(method, path)] = handler

    def fail(self, status: int = 500, body: Any = None, *, times: int = 1, **kwargs: Any) -> None:
        """Queue a fault for the next ``times`` requests."""
        for _ in range(times):
            self.faults.append(Fault(status=status, body=body, **kwargs))

    async def start(self) -> FakeServer:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            await request.read(),
        )
        self.requests.append(recorded)
        if self.faults:
            fault = self.faults.pop(0)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if fault.status:
                if fault.raw is not None:
                    return web.Response(status=fault.status, body=fault.raw, headers=fault.headers)
                return web.json_response(fault.body or {}, status=fault.status, headers=fault.headers)
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            for method, prefix, candidate in self._prefix_routes:
                if method == request.method and request.path.startswith(prefix):
                    handler = candidate
                    break
        if handler is None:
            return web.json_response(
                {"error": {"message": f"no route {request.method} {request.path}", "type": "not_found"}},
                status=404,
            )
        return await handler(request, recorded)


async def send_sse(request: web.Request, events: list[str | bytes], *, delay: float = 0.0,
                   drop_after: int | None = None) -> web.StreamResponse:
    """Stream pre-encoded SSE frames; ``drop_after`` closes the connection after that many frames."""
    response = web.StreamResponse(status=200, headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for index, frame in enumerate(events):
        if drop_after is not None and index >= drop_after:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(frame.encode() if isinstance(frame, str) else frame)
        if delay:
            await asyncio.sleep(delay)
    await response.write_eof()
    return response
