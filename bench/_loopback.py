"""A minimal OpenAI-chat server on loopback, run in its own process so it does not share the
benchmark's CPU time: it answers every POST .../chat/completions with the same small completion, and
every POST .../embeddings with one fixed vector per input (OpenAI's shape, floats or base64)."""

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


EMBEDDING_DIMENSIONS = 256
"""The fake embedding model's dimensions (a vector's JSON is about 2.5 kB)."""


def _embeddings_answer(body: bytes) -> bytes:
    """OpenAI's ``/embeddings`` answer for a request body: a fixed unit-scale vector per input, in order."""
    import base64
    from array import array

    request = json.loads(body)
    inputs = request.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    vector = [round(((i * 37) % 101) / 101 - 0.5, 6) for i in range(EMBEDDING_DIMENSIONS)]
    encoded: object = vector
    if request.get("encoding_format") == "base64":
        encoded = base64.b64encode(array("f", vector).tobytes()).decode("ascii")  # little-endian on x86 and arm
    tokens = sum(max(1, len(text) // 4) for text in texts)
    return json.dumps({
        "object": "list", "model": request.get("model", "bench-embed"),
        "data": [{"object": "embedding", "index": i, "embedding": encoded} for i in range(len(texts))],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }).encode()


def _serve(port: int, faults: dict[str, float]) -> None:
    """``faults``: ``fail_rate`` (a mix of 5xx, 429 and hangs), ``hang_s``, ``seed``. ``POST /control``
    with ``{"outage": true}`` makes every request get a 503 until ``{"outage": false}``."""
    import asyncio
    import random

    from aiohttp import web

    rng = random.Random(int(faults.get("seed", 1)))
    fail_rate = faults.get("fail_rate", 0.0)
    hang_s = faults.get("hang_s", 0.3)
    outage = [False]

    async def control(request: web.Request) -> web.Response:
        outage[0] = bool((await request.json())["outage"])
        return web.json_response({"outage": outage[0]})

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        if outage[0]:
            return web.json_response({"error": {"message": "outage"}}, status=503)
        roll = rng.random()
        if roll < fail_rate:
            kind = roll / fail_rate  # which fault, evenly among the failing share
            if kind < 0.4:
                status = (500, 502, 503)[int(kind * 7.5) % 3]
                return web.json_response({"error": {"message": "injected"}}, status=status)
            if kind < 0.7:
                return web.json_response({"error": {"message": "slow down"}}, status=429,
                                         headers={"retry-after-ms": "1"})
            await asyncio.sleep(hang_s)  # longer than the client's timeout: a timeout
        return web.Response(body=COMPLETION, content_type="application/json")

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.read()
        if outage[0]:
            return web.json_response({"error": {"message": "outage"}}, status=503)
        return web.Response(body=_embeddings_answer(body), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/control", control)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def loopback_server(faults: dict[str, float] | None = None) -> Iterator[str]:
    """Start the server process; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, faults or {}), daemon=True)
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
