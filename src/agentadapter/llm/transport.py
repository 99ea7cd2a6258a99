"""The HTTP seam: send a request, get a response or a byte stream; decode server-sent events.

Backends talk HTTP only through :class:`Transport`, a two-method surface (``send`` and ``stream``)
in the manner of httpx's transports, so tests, retries and instrumentation wrap it instead of living
inside each backend. Two implementations ship: :class:`AiohttpTransport` (the default: measured
faster under concurrency, see ``bench/adapter_overhead.py``) and :class:`HttpxTransport`. Each keeps
one pooled client per running event loop, created lazily, because both libraries bind their
connection pools to the loop that created them. Foreign exceptions are translated here into
:class:`~agentadapter.llm.errors.APIConnectionError` / :class:`APITimeoutError`.
"""

from __future__ import annotations

import asyncio
import json
import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from agentadapter.llm.errors import APIConnectionError, APITimeoutError, ConfigurationError

if TYPE_CHECKING:
    import aiohttp
    import httpx


DEFAULT_CONNECT = 10.0
"""Seconds to wait for a connection when nothing shorter is asked for."""


@dataclass(slots=True, frozen=True)
class Timeout:
    """Connect, read and total limits in seconds; ``total=None`` means no total limit.

    ``read`` bounds the wait for the first byte of the answer and each gap between chunks, not the
    length of an answer that keeps arriving; ``total`` bounds the whole exchange (the transports set
    it from what is left of a call's deadline). A limit of zero or less is never sent: aiohttp reads
    0 as "no limit", so the transports refuse such a request with :class:`APITimeoutError` instead.
    """

    connect: float = DEFAULT_CONNECT
    read: float = 600.0
    total: float | None = None

    @classmethod
    def of(cls, seconds: float) -> Timeout:
        """A backend's ``timeout:`` setting: the connect, first-byte and between-chunk limit, no total.

        A stream that keeps delivering is not cut; one that goes quiet for ``seconds`` is.
        """
        return cls(connect=min(seconds, DEFAULT_CONNECT), read=seconds, total=None)

    def capped(self, time_left: float | None) -> Timeout:
        """The same limits, with the total bounded by what is left of a deadline."""
        if time_left is None:
            return self
        total = time_left if self.total is None else min(self.total, time_left)
        return Timeout(min(self.connect, total), min(self.read, total), total)

    def spent(self) -> bool:
        """Whether a limit is already used up (zero or less): such a request must not be sent."""
        return self.connect <= 0 or self.read <= 0 or (self.total is not None and self.total <= 0)


DEFAULT_TIMEOUT = Timeout()


@dataclass(slots=True)
class HTTPRequest:
    """One HTTP request. ``json`` is serialized by the transport; ``content`` is sent as is."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    timeout: Timeout = DEFAULT_TIMEOUT
    provider: str = ""
    """Who is being called, for error messages only."""
    model: str | None = None

    def body(self) -> bytes | None:
        if self.content is not None:
            return self.content
        if self.json is None:
            return None
        return json.dumps(self.json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(slots=True)
class HTTPResponse:
    """A complete response. Header names are lower-case."""

    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class StreamingResponse(Protocol):
    """A response whose body is read incrementally."""

    status: int
    headers: dict[str, str]

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...


ClientT = TypeVar("ClientT")


class Transport(ABC, Generic[ClientT]):
    """Send HTTP requests. One instance serves every event loop; clients are pooled per loop."""

    name: str = "transport"

    def __init__(self, *, max_connections: int = 100, verify: bool = True) -> None:
        self.max_connections = max_connections
        self.verify = verify
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientT] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary()
        )

    def client(self) -> ClientT:
        """The pooled client of the running loop, created on first use."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._new_client()
            self._closers[loop] = loop.create_task(self._close_at_loop_end(loop, client),
                                                   name=f"agentadapter-{self.name}-closer")
        return client

    async def _close_at_loop_end(self, loop: asyncio.AbstractEventLoop, client: ClientT) -> None:
        """Wait until cancelled, then close ``client`` if it is still the loop's.

        ``asyncio.run`` (and ``asyncio.Runner``) cancel the tasks left when their main coroutine ends,
        before closing the loop: a program that never closed its ``LLM`` (the agents' shared default
        one, a script's ``LLM()``) still closes its connections, without "Unclosed client session".
        """
        try:
            await asyncio.Event().wait()
        finally:
            if self._clients.get(loop) is client:
                del self._clients[loop]
                await self._close_client(client)

    @abstractmethod
    def _new_client(self) -> ClientT: ...

    @abstractmethod
    async def _close_client(self, client: ClientT) -> None: ...

    @abstractmethod
    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send a request and read the whole response (any status)."""

    @abstractmethod
    def stream(self, request: HTTPRequest) -> AbstractAsyncContextManager[StreamingResponse]:
        """Send a request and read the body incrementally (any status)."""

    async def aclose(self) -> None:
        """Close the running loop's client (others close with their loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        closer = self._closers.pop(loop, None)
        if closer is not None:
            closer.cancel()  # nothing left for it to close
        if client is not None:
            await self._close_client(client)


def _connection_error(request: HTTPRequest, exc: BaseException) -> APIConnectionError:
    who = request.provider or "the backend"
    model = f", model {request.model}" if request.model else ""
    if isinstance(exc, APIConnectionError):
        return exc
    timeout_types: tuple[type[BaseException], ...] = (asyncio.TimeoutError, TimeoutError)
    if isinstance(exc, timeout_types) or "Timeout" in type(exc).__name__:
        return APITimeoutError(
            f"APITimeoutError: {who} did not answer {request.method} {request.url} in time "
            f"({request.timeout}{model}); raise timeout= or check the server",
            provider=request.provider or None,
            model=request.model,
        )
    return APIConnectionError(
        f"APIConnectionError: cannot reach {who} at {request.url} ({type(exc).__name__}: {exc}{model}); "
        "check the base URL and that the server is up",
        provider=request.provider or None,
        model=request.model,
    )


def _refuse_spent(request: HTTPRequest) -> None:
    """Raise, before anything is sent, when a limit of ``request`` is zero or less.

    aiohttp (and ``asyncio.timeout``) read a total of 0 as *no* limit, so a request built after its
    deadline passed would otherwise wait forever.
    """
    if request.timeout.spent():
        who = request.provider or "the backend"
        model = f", model {request.model}" if request.model else ""
        raise APITimeoutError(
            f"APITimeoutError: no time was left to call {who} ({request.method} {request.url}{model}): "
            f"the call's deadline had passed ({request.timeout}); nothing was sent. Raise timeout= on the call",
            provider=request.provider or None,
            model=request.model,
            retryable=False,
        )


# ------------------------------------------------------------------------------------------ aiohttp


class _AiohttpStream:
    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aread(self) -> bytes:
        return await self._response.read()


class AiohttpTransport(Transport["aiohttp.ClientSession"]):
    """The default transport, on aiohttp."""

    name = "aiohttp"

    def _new_client(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=self.verify, ttl_dns_cache=300)
        # No session-wide timeout: each request brings its own.
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True
        )

    async def _close_client(self, client: aiohttp.ClientSession) -> None:
        await client.close()

    @staticmethod
    def _timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
        import aiohttp

        # aiohttp rounds limits of 5 s and more up to the next whole second of the loop's clock;
        # a deadline is a promise to the caller, so no limit is rounded.
        return aiohttp.ClientTimeout(
            total=timeout.total, sock_connect=timeout.connect, sock_read=timeout.read, ceil_threshold=math.inf
        )

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        import aiohttp

        _refuse_spent(request)
        try:
            async with self.client().request(
                request.method,
                request.url,
                data=request.body(),
                headers=request.headers,
                timeout=self._timeout(request.timeout),
            ) as response:
                content = await response.read()
                return HTTPResponse(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, content
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _connection_error(request, exc) from exc

    @asynccontextmanager
    async def _stream(self, request: HTTPRequest) -> AsyncIterator[StreamingResponse]:
        import aiohttp

        _refuse_spent(request)
        # aiohttp's total limit covers the body's reads too (not the caller's work between them):
        # sock_read bounds each gap, total what is left of the deadline.
        try:
            async with self.client().request(
                request.method,
                request.url,
                data=request.body(),
                headers=request.headers,
                timeout=self._timeout(request.timeout),
            ) as response:
                yield _AiohttpStream(response)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _connection_error(request, exc) from exc

    def stream(self, request: HTTPRequest) -> AbstractAsyncContextManager[StreamingResponse]:
        return self._stream(request)


# -------------------------------------------------------------------------------------------- httpx


class _HttpxStream:
    """An httpx response read chunk by chunk, each read bounded by the request's total deadline."""

    __slots__ = ("_deadline", "_request", "_response", "headers", "status")

    def __init__(self, response: httpx.Response, request: HTTPRequest, deadline: float | None) -> None:
        self._response = response
        self._request = request
        self._deadline = deadline
        self.status = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        import httpx

        chunks = self._response.aiter_raw()
        while True:
            try:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except (httpx.TransportError, TimeoutError) as exc:
                raise _connection_error(self._request, exc) from exc
            yield chunk

    async def aread(self) -> bytes:
        import httpx

        try:
            async with asyncio.timeout_at(self._deadline):
                return await self._response.aread()
        except (httpx.TransportError, TimeoutError) as exc:
            raise _connection_error(self._request, exc) from exc


class HttpxTransport(Transport["httpx.AsyncClient"]):
    """A transport on httpx (also the way to plug in an ``httpx.MockTransport`` for tests).

    httpx has no total limit of its own: the total is an ``asyncio`` deadline around each wait on
    the network (sending, the headers, every chunk), never around the caller's work between chunks.
    """

    name = "httpx"

    def __init__(
        self, *, max_connections: int = 100, verify: bool = True, mount: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(max_connections=max_connections, verify=verify)
        self._mount = mount

    def _new_client(self) -> httpx.AsyncClient:
        import httpx

        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        return httpx.AsyncClient(limits=limits, verify=self.verify, transport=self._mount, timeout=None)

    async def _close_client(self, client: httpx.AsyncClient) -> None:
        await client.aclose()

    @staticmethod
    def _timeout(timeout: Timeout) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(connect=timeout.connect, read=timeout.read, write=timeout.read, pool=timeout.connect)

    @staticmethod
    def _deadline(timeout: Timeout) -> float | None:
        """The total limit as an instant of the loop's clock (what ``asyncio.timeout_at`` takes)."""
        return None if timeout.total is None else asyncio.get_running_loop().time() + timeout.total

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        import httpx

        _refuse_spent(request)
        try:
            async with asyncio.timeout_at(self._deadline(request.timeout)):
                response = await self.client().request(
                    request.method,
                    request.url,
                    content=request.body(),
                    headers=request.headers,
                    timeout=self._timeout(request.timeout),
                )
        except (httpx.TransportError, TimeoutError) as exc:
            raise _connection_error(request, exc) from exc
        return HTTPResponse(
            response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content
        )

    @asynccontextmanager
    async def _stream(self, request: HTTPRequest) -> AsyncIterator[StreamingResponse]:
        import httpx

        _refuse_spent(request)
        deadline = self._deadline(request.timeout)
        client = self.client()
        http_request = client.build_request(
            request.method,
            request.url,
            content=request.body(),
            headers=request.headers,
            timeout=self._timeout(request.timeout),
        )
        try:
            async with asyncio.timeout_at(deadline):
                response = await client.send(http_request, stream=True)
        except (httpx.TransportError, TimeoutError) as exc:
            raise _connection_error(request, exc) from exc
        try:
            yield _HttpxStream(response, request, deadline)
        finally:
            await response.aclose()

    def stream(self, request: HTTPRequest) -> AbstractAsyncContextManager[StreamingResponse]:
        return self._stream(request)


TRANSPORTS: dict[str, type[Transport[Any]]] = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}


def create_transport(name: str = "aiohttp", **options: Any) -> Transport[Any]:
    """A transport by name (``aiohttp``, the default, or ``httpx``)."""
    try:
        return TRANSPORTS[name](**options)
    except KeyError:
        raise ConfigurationError(
            f"unknown transport {name!r}; use one of {', '.join(sorted(TRANSPORTS))}"
        ) from None


# --------------------------------------------------------------------------------------------- SSE


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event."""

    event: str = "message"
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    """Incremental server-sent-events decoder (LF, CRLF and CR line endings, split anywhere)."""

    __slots__ = ("_buffer", "_data", "_event", "_id")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        lines = buffer.splitlines(keepends=True)
        events: list[SSEEvent] = []
        self._buffer = b""
        for index, raw in enumerate(lines):
            last = index == len(lines) - 1
            # An incomplete last line waits for more; so does a trailing CR that may be half of CRLF.
            if last and (not raw.endswith((b"\n", b"\r")) or raw.endswith(b"\r")):
                self._buffer = raw
                break
            event = self._line(raw.rstrip(b"\r\n").decode("utf-8"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: whatever is buffered, as a final event if it holds data."""
        events: list[SSEEvent] = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip(b"\r\n").decode("utf-8"), b""
            event = self._line(line)
            if event is not None:
                events.append(event)
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = None, []
            return event
        if line[0] == ":":
            return None  # a comment / keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Decode a byte stream into server-sent events."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


async def iter_json_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    """Decode a newline-delimited JSON stream (Ollama's native API)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
