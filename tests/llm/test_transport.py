"""The HTTP seam against a real loopback server, for both transports, and the SSE decoder."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from agentadapter.llm.errors import APIConnectionError, APITimeoutError, ConfigurationError
from agentadapter.llm.transport import (
    AiohttpTransport,
    HTTPRequest,
    HttpxTransport,
    SSEDecoder,
    SSEEvent,
    Timeout,
    Transport,
    create_transport,
    iter_json_lines,
    iter_sse,
)
from fakes.server import FakeServer, Recorded


async def _echo(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    return web.json_response(
        {"method": recorded.method, "body": recorded.json, "x-test": recorded.headers.get("x-test")},
        headers={"X-Answer": "42"},
    )


async def _teapot(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    return web.json_response({"error": {"message": "short and stout"}}, status=418)


async def _sse(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for index in range(3):
        await response.write(f"data: {index}\n\n".encode())
    await response.write_eof()
    return response


async def _stall_mid_body(request: web.Request, recorded: Recorded) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: first\n\n")
    await asyncio.sleep(0.5)  # longer than the client's read timeout
    return response


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with FakeServer() as fake:
        fake.route("POST", "/echo", _echo)
        fake.route("GET", "/teapot", _teapot)
        fake.route("GET", "/sse", _sse)
        fake.route("GET", "/stall", _stall_mid_body)
        yield fake


@pytest.fixture(params=[AiohttpTransport, HttpxTransport], ids=["aiohttp", "httpx"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport[Any]]:
    instance: Transport[Any] = request.param()
    yield instance
    await instance.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------ transports


async def test_send_json(server: FakeServer, transport: Transport[Any]) -> None:
    response = await transport.send(
        HTTPRequest("POST", server.url + "/echo", {"x-test": "yes"}, json={"a": "é", "n": [1, 2]})
    )
    assert response.status == 200
    assert response.headers["x-answer"] == "42"  # header names are lower-case
    assert response.json() == {"method": "POST", "body": {"a": "é", "n": [1, 2]}, "x-test": "yes"}
    assert server.requests[-1].body == '{"a":"é","n":[1,2]}'.encode()  # compact, UTF-8


async def test_send_returns_error_statuses(server: FakeServer, transport: Transport[Any]) -> None:
    response = await transport.send(HTTPRequest("GET", server.url + "/teapot"))
    assert response.status == 418
    assert response.json()["error"]["message"] == "short and stout"


def test_request_body() -> None:
    assert HTTPRequest("GET", "u").body() is None
    assert HTTPRequest("POST", "u", json={"a": 1}, content=b"raw").body() == b"raw"
    assert HTTPRequest("POST", "u", json=[]).body() == b"[]"


async def test_stream(server: FakeServer, transport: Transport[Any]) -> None:
    async with transport.stream(HTTPRequest("GET", server.url + "/sse")) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [event.data async for event in iter_sse(response.aiter_bytes())]
    assert events == ["0", "1", "2"]


async def test_stream_with_an_error_status_reads_the_body(server: FakeServer, transport: Transport[Any]) -> None:
    async with transport.stream(HTTPRequest("GET", server.url + "/teapot")) as response:
        assert response.status == 418
        assert json.loads(await response.aread())["error"]["message"] == "short and stout"


async def test_read_timeout_on_send(server: FakeServer, transport: Transport[Any]) -> None:
    server.fail(status=0, delay=0.3)  # answers, but late
    request = HTTPRequest("POST", server.url + "/echo", json={}, timeout=Timeout(connect=5, read=0.05),
                          provider="fakeai", model="m1")
    with pytest.raises(APITimeoutError) as caught:
        await transport.send(request)
    assert "fakeai" in str(caught.value) and caught.value.retryable
    assert (caught.value.provider, caught.value.model) == ("fakeai", "m1")


async def test_total_timeout_on_send(server: FakeServer, transport: Transport[Any]) -> None:
    server.fail(status=0, delay=0.3)
    with pytest.raises(APITimeoutError):
        await transport.send(HTTPRequest("POST", server.url + "/echo", json={}, timeout=Timeout(total=0.05)))


async def test_read_timeout_in_the_middle_of_a_stream(server: FakeServer, transport: Transport[Any]) -> None:
    received: list[bytes] = []
    with pytest.raises(APITimeoutError):
        async with transport.stream(
            HTTPRequest("GET", server.url + "/stall", timeout=Timeout(connect=5, read=0.05))
        ) as response:
            async for chunk in response.aiter_bytes():
                received.append(chunk)
    assert b"".join(received) == b"data: first\n\n"


async def test_refused_connection(transport: Transport[Any]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    with pytest.raises(APIConnectionError) as caught:
        await transport.send(HTTPRequest("POST", url, json={}, provider="local"))
    assert not isinstance(caught.value, APITimeoutError)
    assert url in str(caught.value) and "local" in str(caught.value)
    with pytest.raises(APIConnectionError):
        async with transport.stream(HTTPRequest("GET", url)):
            pass


async def test_connection_dropped_without_an_answer(server: FakeServer, transport: Transport[Any]) -> None:
    server.fail(drop=True)
    with pytest.raises(APIConnectionError):
        await transport.send(HTTPRequest("POST", server.url + "/echo", json={}))


async def test_one_client_per_loop(transport: Transport[Any]) -> None:
    first = transport.client()
    assert transport.client() is first
    await transport.aclose()
    assert transport.client() is not first
    await transport.aclose()
    await transport.aclose()  # closing twice is harmless


async def test_httpx_mock_transport() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"seen": json.loads(request.content)})

    transport = HttpxTransport(mount=httpx.MockTransport(handler))
    try:
        response = await transport.send(HTTPRequest("POST", "http://mock.invalid/x", json={"k": 1}))
    finally:
        await transport.aclose()
    assert (response.status, response.json()) == (201, {"seen": {"k": 1}})


def test_create_transport() -> None:
    assert isinstance(create_transport(), AiohttpTransport)
    assert isinstance(create_transport("httpx", max_connections=5), HttpxTransport)
    with pytest.raises(ConfigurationError, match="unknown transport 'curl'"):
        create_transport("curl")


def test_timeout_capped_by_a_deadline() -> None:
    base = Timeout(connect=10, read=60, total=None)
    assert base.capped(None) is base
    assert base.capped(5) == Timeout(5, 5, 5)
    assert Timeout(1, 60, 30).capped(100) == Timeout(1, 30, 30)  # no limit longer than the total


# ------------------------------------------------------------------------------------------- SSE

STREAM = (
    ": a comment, then a keep-alive\n"
    ":\n"
    "event: message_start\n"
    "id: 7\n"
    'data: {"text": "héllo 🌍"}\n'
    "\n"
    "data: line one\n"
    "data:line two\n"
    "data:  leading space kept\n"
    "retry: 1000\n"
    "unknown field\n"
    "\n"
    "\n"
    "event: error\n"
    "data\n"
    "\n"
    "data: [DONE]\n"
    "\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"text": "héllo 🌍"}', "7"),
    SSEEvent("message", "line one\nline two\n leading space kept", "7"),
    SSEEvent("error", "", "7"),
    SSEEvent("message", "[DONE]", "7"),
]
NEWLINES = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def encoded(newline: str) -> bytes:
    return STREAM.replace("\n", newline).encode("utf-8")


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events + decoder.flush()


@pytest.mark.parametrize("newline", NEWLINES.values(), ids=NEWLINES.keys())
def test_sse_whole(newline: str) -> None:
    assert decode([encoded(newline)]) == EXPECTED


@pytest.mark.parametrize("newline", NEWLINES.values(), ids=NEWLINES.keys())
def test_sse_split_at_every_byte_boundary(newline: str) -> None:
    data = encoded(newline)
    for cut in range(len(data) + 1):
        assert decode([data[:cut], data[cut:]]) == EXPECTED, f"split at byte {cut}"


@pytest.mark.parametrize("newline", NEWLINES.values(), ids=NEWLINES.keys())
def test_sse_one_byte_at_a_time(newline: str) -> None:
    data = encoded(newline)
    assert decode([data[i : i + 1] for i in range(len(data))]) == EXPECTED


def test_sse_events_are_released_as_soon_as_they_are_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [SSEEvent("message", "a")]
    assert decoder.feed(b"data: b\r\n\r\n") == [SSEEvent("message", "b")]


def test_sse_flush_emits_an_unterminated_last_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.flush() == [SSEEvent("message", "tail")]
    assert decoder.flush() == []


def test_sse_event_json() -> None:
    assert SSEEvent(data='{"a": [1]}').json() == {"a": [1]}


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_iter_sse() -> None:
    events = [event async for event in iter_sse(_chunks(b"data: 1\r\n", b"\r\ndata: 2", b"\n\n", b"data: 3"))]
    assert [e.data for e in events] == ["1", "2", "3"]


async def test_iter_json_lines() -> None:
    lines = [item async for item in iter_json_lines(_chunks(b'{"a": 1}\n{"b"', b': 2}\n\n', b'{"c": 3}'))]
    assert lines == [{"a": 1}, {"b": 2}, {"c": 3}]
