"""A loopback load balancer for tests: what nginx's ``upstream`` with health checks does, in aiohttp.

- Round robin over the upstreams that are up.
- Health: every ``check_s`` it asks each upstream's ``/readyz``; a 503 or a refused connection takes it
  out, a 200 puts it back (:meth:`Balancer.wait_up` / :meth:`Balancer.wait_down` wait on those changes).
- A request whose connection to an upstream fails (refused, reset before anything was answered) is
  tried on the next one; a request that reached an upstream is retried only when it is idempotent
  (nginx's ``proxy_next_upstream error`` without ``non_idempotent``).
- A new upstream connection per request, as nginx without ``keepalive``: no request can land on a
  kept-alive connection that the upstream is closing.
- Responses are streamed through (SSE included).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import aiohttp
from aiohttp import web

__all__ = ["Balancer"]

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                         "transfer-encoding", "upgrade", "host", "content-length"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Balancer:
    def __init__(self, upstreams: Sequence[str], *, check_s: float = 0.05) -> None:
        self.upstreams = list(upstreams)
        self.check_s = check_s
        self.up = dict.fromkeys(self.upstreams, False)
        self._changed = asyncio.Condition()
        self._next = 0
        self.retried = 0
        """Requests sent to another upstream after a failed connection."""
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._checker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                              timeout=aiohttp.ClientTimeout(total=None, sock_connect=2))
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._checker = asyncio.get_running_loop().create_task(self._check_forever())
        return self.url

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def wait_up(self, upstream: str) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.up[upstream])

    async def wait_down(self, upstream: str) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self.up[upstream])

    async def _set(self, upstream: str, up: bool) -> None:
        if self.up[upstream] != up:
            async with self._changed:
                self.up[upstream] = up
                self._changed.notify_all()

    async def _check_forever(self) -> None:
        assert self._session is not None
        while True:
            for upstream in self.upstreams:
                try:
                    async with self._session.get(upstream + "/readyz",
                                                 timeout=aiohttp.ClientTimeout(total=2)) as answer:
                        await answer.read()
                        up = answer.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    up = False
                await self._set(upstream, up)
            await asyncio.sleep(self.check_s)  # the health check's period, as nginx's "interval"

    def _order(self) -> list[str]:
        """Upstreams to try: the healthy ones round robin, then the others (nginx tries them all before 502)."""
        healthy = [u for u in self.upstreams if self.up[u]]
        if healthy:
            self._next = (self._next + 1) % len(healthy)
            healthy = healthy[self._next:] + healthy[:self._next]
        return healthy + [u for u in self.upstreams if u not in healthy]

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        last_error: BaseException | None = None
        for attempt, upstream in enumerate(self._order()):
            if attempt:
                self.retried += 1
            try:
                upstream_answer = await self._session.request(request.method, upstream + request.path_qs,
                                                              headers=headers, data=body, allow_redirects=False)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Nothing was sent (refused, or not connected within sock_connect on a loaded machine): any request
                # may go elsewhere, as nginx's proxy_next_upstream does.
                last_error = exc
                await self._set(upstream, False)
                continue
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                last_error = exc  # it may have been received: only an idempotent one is sent again
                if request.method in _IDEMPOTENT:
                    continue
                break
            async with upstream_answer:
                response = web.StreamResponse(status=upstream_answer.status, headers={
                    k: v for k, v in upstream_answer.headers.items() if k.lower() not in _HOP_BY_HOP})
                await response.prepare(request)
                async for chunk in upstream_answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        return web.Response(status=502, text=f"no upstream answered: {type(last_error).__name__}: {last_error}")
