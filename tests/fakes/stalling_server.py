"""A loopback OpenAI chat-completions server that stalls, slowly or for good, path by path.

One server, one behaviour per path prefix (a backend's ``base_url`` picks it):

- ``/silent/v1``: reads the request and never answers (no status line, no headers);
- ``/headers/v1``: answers ``200`` with stream headers, then sends nothing more;
- ``/trickle/v1``: streams ``chunks`` text deltas ``interval`` seconds apart, then finishes;
- ``/stall-mid/v1``: streams ``chunks`` deltas, then goes quiet for good;
- ``/ok/v1``: answers at once (a whole completion, or a short stream).

The stalls wait on :attr:`release`, set by :meth:`close`, so stopping the server never waits for
them. :attr:`arrived` counts requests per behaviour and :meth:`wait_for` waits for the n-th, so a
test can wait on the event instead of on a clock.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from aiohttp import web

from .server import FakeServer, Recorded


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    body = {"id": "chatcmpl-stall", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return f"data: {json.dumps(body)}\n\n".encode()


COMPLETION = {
    "id": "chatcmpl-ok", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class StallingServer(FakeServer):
    """See the module docstring."""

    def __init__(self, *, interval: float = 0.1, chunks: int = 10) -> None:
        super().__init__()
        self.interval = interval
        self.chunks = chunks
        self.release = asyncio.Event()
        self.arrived: Counter[str] = Counter()
        self._arrival = asyncio.Condition()
        for kind in ("silent", "headers", "trickle", "stall-mid", "ok"):
            self.route("POST", f"/{kind}/", self._handler(kind), prefix=True)

    def url_for(self, kind: str) -> str:
        return f"{self.url}/{kind}/v1"

    async def close(self) -> None:
        self.release.set()
        await super().close()

    async def wait_for(self, kind: str, count: int = 1) -> None:
        """Until ``count`` requests of ``kind`` have arrived."""
        async with self._arrival:
            await self._arrival.wait_for(lambda: self.arrived[kind] >= count)

    def _handler(self, kind: str) -> Any:
        async def handle(request: web.Request, recorded: Recorded) -> web.StreamResponse:
            async with self._arrival:
                self.arrived[kind] += 1
                self._arrival.notify_all()
            streaming = bool((recorded.json or {}).get("stream"))
            if kind == "silent":
                await self.release.wait()
                return web.Response(status=503)
            if kind == "ok" and not streaming:
                return web.json_response(COMPLETION)
            response = web.StreamResponse(
                status=200, headers={"content-type": "text/event-stream" if streaming else "application/json"}
            )
            await response.prepare(request)
            if kind == "headers":
                await self.release.wait()
                return response
            count = 2 if kind == "ok" else self.chunks
            for index in range(count):
                await response.write(chunk({"content": f"w{index} "}))
                if kind == "trickle":
                    await asyncio.sleep(self.interval)
            if kind == "stall-mid":
                await self.release.wait()
                return response
            await response.write(chunk({}, "stop"))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response

        return handle
