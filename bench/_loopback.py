"""A minimal OpenAI-chat server on loopback, run in its own process so it does not share the
benchmark's CPU time: it answers every POST .../chat/completions with the same small completion."""

from __future__ import annotations

import json
import multiprocessing
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

COMPLETION = json.dumps({
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 0,
    "model": "bench-model",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Hello! How can I help you today?"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}).encode()


def _serve(port: int, fail_every: int) -> None:
    from aiohttp import web

    count = 0

    async def chat(request: web.Request) -> web.Response:
        nonlocal count
        await request.read()
        count += 1
        if fail_every and count % fail_every == 0:
            return web.json_response({"error": {"message": "injected"}}, status=500)
        return web.Response(body=COMPLETION, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def loopback_server(fail_every: int = 0) -> Iterator[str]:
    """Start the server process; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, fail_every), daemon=True)
    process.start()
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                import time

                time.sleep(0.05)
        else:
            print("loopback server did not start", file=sys.stderr)
            raise SystemExit(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.join(5)
