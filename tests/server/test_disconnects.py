"""A client that goes away is not a server error: no 500 in the metrics, no traceback in the log.

The app runs under a real uvicorn on loopback and raw sockets play the clients that leave: after the
headers and part of a body (declared with Content-Length, or chunked), and after a whole request,
before its answer. Each is logged at INFO as a disconnect and counted under status 499 (the
"client closed request" status of nginx's logs), and the server answers the next client as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import uvicorn

from agentadapter.server.middleware import HTTP_REQUESTS
from server.conftest import Api, AppFactory


@contextlib.asynccontextmanager
async def _served(api: Api) -> AsyncIterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api.app, lifespan="off", log_level="info", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await task
        sock.close()


def _count(route: str, status: str) -> float:
    for metric in HTTP_REQUESTS.collect():
        for sample in metric.samples:
            if (sample.name.endswith("_total") and sample.labels.get("route") == route
                    and sample.labels.get("status") == status):
                return float(sample.value)
    return 0.0


async def _send_and_leave(host: str, port: int, payload: bytes) -> None:
    """Connect, send ``payload`` (a request cut short), close the connection."""
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _wait_for(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.01)


def _request(key: str, body: bytes, *, declared: int | None = None, chunked: bool = False) -> bytes:
    head = [b"POST /v1/agents HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json",
            b"Authorization: Bearer " + key.encode()]
    if chunked:
        head.append(b"Transfer-Encoding: chunked")
        return b"\r\n".join(head) + b"\r\n\r\n" + f"{len(body):x}\r\n".encode() + body + b"\r\n"
    head.append(f"Content-Length: {declared if declared is not None else len(body)}".encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@pytest.fixture
async def live(make_api: AppFactory) -> AsyncIterator[tuple[Api, str, int]]:
    async with make_api() as api, _served(api) as (host, port):
        yield api, host, port


@pytest.mark.parametrize("cut", ["declared", "chunked"])
async def test_a_client_gone_before_its_body_is_read_is_a_disconnect_not_a_500(
        live: tuple[Api, str, int], caplog: pytest.LogCaptureFixture, cut: str) -> None:
    api, host, port = live
    key = (await api.tenant()).admin
    route = "/v1/agents"
    errors_before = _count(route, "500") + _count("unmatched", "500")
    gone_before = _count(route, "499") + _count("unmatched", "499")
    caplog.set_level(logging.DEBUG)
    partial = b'{"name": "half-an-agent", "model": "test/ec'
    payload = _request(key, partial, declared=500) if cut == "declared" else _request(key, partial, chunked=True)
    for _ in range(3):
        await _send_and_leave(host, port, payload)
    await _wait_for(lambda: _count(route, "499") + _count("unmatched", "499") >= gone_before + 3)
    assert _count(route, "500") + _count("unmatched", "500") == errors_before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info]
    assert [r for r in caplog.records if r.levelno == logging.INFO and "disconnected" in r.getMessage()]
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        answer = await client.post(route, headers={"Authorization": f"Bearer {key}"},
                                   json={"name": "a-whole-agent", "model": "test/echo"})
    assert answer.status_code == 201, answer.text


async def test_a_client_gone_before_its_answer_is_a_disconnect_not_a_500(
        live: tuple[Api, str, int], caplog: pytest.LogCaptureFixture) -> None:
    api, host, port = live
    key = (await api.tenant()).admin
    caplog.set_level(logging.DEBUG)
    errors_before = _count("/v1/agents", "500")
    body = b'{"name": "left-early", "model": "test/echo"}'
    for _ in range(5):
        await _send_and_leave(host, port, _request(key, body))
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        headers = {"Authorization": f"Bearer {key}"}
        answer = await client.get("/v1/agents", headers=headers, params={"name": "left-early"})
        assert answer.status_code == 200
    assert _count("/v1/agents", "500") == errors_before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info]
