"""The cheapest reasonable Python proxy, as a floor for ``bench/gateway.py``: what any Python gateway
can reach on this machine before it does any work of its own.

One aiohttp server (on uvloop when it is installed, as ``agentadapter serve`` runs) with a single
route, ``POST /v1/chat/completions``, that forwards the request body to the provider through one
shared keep-alive ``aiohttp.ClientSession`` (a connection limit like the gateway's transport) and
answers with the provider's body and status. No auth, no parsing, no records. It runs in its own
processes, like the loopback provider (``bench/_loopback.py``) and the gateway, so that the load
generator measures it from outside:

    python bench/_passthrough.py --provider http://127.0.0.1:PORT/v1 --port 8123 [--processes 2]

With ``--processes N`` a supervisor starts N serving processes that share the port (SO_REUSEPORT,
the kernel spreads connections among them), as ``--workers N`` does for the gateway. It prints
``ready`` once every process listens and stops them all on SIGTERM or SIGINT; a serving process
whose supervisor is gone stops too, so none outlives an interrupted benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from multiprocessing.synchronize import Event

CONNECTION_LIMIT = 100
"""The outgoing pool's size: the gateway's transport default (``llm/transport.py``, max_connections)."""
BACKLOG = 1024


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def listening_socket(port: int, *, reuse_port: bool) -> socket.socket:
    """127.0.0.1:``port``, bound and listening before the server starts: connections made from then on
    wait in the backlog, so the process can say it is ready before aiohttp starts accepting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def serve(provider_url: str, port: int, *, reuse_port: bool, on_ready: Callable[[], None]) -> None:
    """Serve the pass-through on 127.0.0.1:``port`` until SIGTERM or SIGINT; ``on_ready`` once it listens."""
    import aiohttp
    from aiohttp import web

    sock = listening_socket(port, reuse_port=reuse_port)

    upstream = provider_url.rstrip("/") + "/chat/completions"
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def chat(request: web.Request) -> web.Response:
        body = await request.read()
        async with request.app[session_key].post(upstream, data=body) as answer:
            payload = await answer.read()
            return web.Response(body=payload, status=answer.status,
                                content_type=answer.content_type or "application/json")

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=CONNECTION_LIMIT)
        # The provider ignores the key; a real one would need it, and it costs the same to send.
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            app[session_key] = session
            supervisor = multiprocessing.parent_process()
            if supervisor is not None:
                # Its sentinel becomes readable when it ends: a supervisor killed without a chance to stop
                # us (SIGKILL) must not leave us serving.
                asyncio.get_running_loop().add_reader(supervisor.sentinel, os._exit, 0)
            on_ready()
            yield

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.cleanup_ctx.append(lifetime)
    web.run_app(app, sock=sock, backlog=BACKLOG, print=None, access_log=None, handle_signals=True,
                loop=_event_loop())


def _serve_child(provider_url: str, port: int, ready: Event) -> None:
    # The supervisor owns Ctrl-C: a terminal's SIGINT goes to the whole process group, and the
    # supervisor then stops its children with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(provider_url, port, reuse_port=True, on_ready=ready.set)


def supervise(provider_url: str, port: int, processes: int, *, start_timeout: float = 30.0) -> int:
    """Start ``processes`` serving processes on one port, say ``ready`` once all listen, stop them on a signal."""
    context = multiprocessing.get_context("spawn")
    children: list[tuple[multiprocessing.process.BaseProcess, Event]] = []
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for _ in range(processes):
            ready = context.Event()
            children.append((context.Process(target=_serve_child, args=(provider_url, port, ready), daemon=True), ready))
            children[-1][0].start()
        deadline = time.monotonic() + start_timeout
        for child, ready in children:
            while not ready.wait(0.1):
                if stopping or not child.is_alive() or time.monotonic() > deadline:
                    print(f"a pass-through process did not start (exit code {child.exitcode})", file=sys.stderr)
                    return 1
        print("ready", flush=True)
        while not stopping:
            if any(not child.is_alive() for child, _ in children):
                print("a pass-through process exited", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for child, _ in children:
            child.terminate()
        for child, _ in children:
            child.join(10)
            if child.is_alive():
                child.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", required=True, help="the provider's base URL (http://127.0.0.1:PORT/v1)")
    parser.add_argument("--port", type=int, required=True, help="the port to serve on (127.0.0.1)")
    parser.add_argument("--processes", type=int, default=1, help="serving processes sharing the port")
    args = parser.parse_args()
    if args.processes <= 1:  # one process serves by itself, like the provider
        serve(args.provider, args.port, reuse_port=False, on_ready=lambda: print("ready", flush=True))
        return
    raise SystemExit(supervise(args.provider, args.port, args.processes))


if __name__ == "__main__":
    main()
