"""The HTTP middleware, as plain ASGI classes (no per-request task or buffering, unlike BaseHTTPMiddleware).

- :class:`RequestContext` gives each request an id (the client's ``X-Request-ID`` when it is sane,
  else a new one), echoes it in the response, counts requests and their latency per route
  template for ``/metrics``, and answers an unexpected exception with a logged 500 in the one
  error shape; a client that disconnects before its answer is logged at INFO and counted as 499,
  never as a 500;
- :class:`SecurityHeaders` adds ``nosniff``, ``DENY`` framing, ``no-referrer``, a strict
  Content-Security-Policy (a looser one for the ``/docs`` pages, which load Swagger UI), HSTS in
  production, and ``Cache-Control: no-store`` on API answers;
- :class:`BodySizeLimit` refuses a body over the limit with 413 - at once from ``Content-Length``,
  or as soon as a chunked body passes it - in the one error shape;
- :class:`JSONBodyGuard` reads every body (within that limit) and refuses, with 422, one nested too
  deep, too large in values or strings, or holding NaN, Infinity, NUL or lone surrogates, before any
  route parses it (the checks are in :mod:`agentadapter.server.payloads`, large bodies off the loop).

CORS is Starlette's ``CORSMiddleware``, configured from ``AGENTADAPTER_CORS_ORIGINS`` in ``app.py``.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentadapter.server.errors import error_body
from agentadapter.server.payloads import (
    CheckedBody,
    InvalidJSON,
    PayloadChecker,
    PayloadRefused,
    enter_request_payloads,
    exit_request_payloads,
)

__all__ = [
    "CHECKED_BODY", "HTTP_LATENCY", "HTTP_REQUESTS", "RESPONSE_STATUS", "BodySizeLimit", "JSONBodyGuard",
    "RequestContext", "SecurityHeaders",
]

HTTP_REQUESTS = Counter("agentadapter_http_requests_total", "HTTP requests answered, by method, route and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("agentadapter_http_request_duration_seconds", "Time to the response's first byte",
                         ["method", "route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0))

logger = logging.getLogger("agentadapter.server")
_SANE_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
# Request ids: a random per-process prefix and a counter - unique, and cheaper than a uuid4 each.
_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class RequestContext:
    """Request id in and out, the request counters and latency histogram, and clients that leave.

    A client that disconnects before its answer (before or while its body is read, or while the
    route works) is no server error: it is logged at INFO and counted under status 499 (nginx's
    "client closed request"), whether the app then returned without answering or failed for want of
    the client (Starlette's ``ClientDisconnect``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Label lookups cost a lock and a hash each time; the children are kept per (method, route).
        self._latency: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        text = given.decode("latin-1") if given else ""
        request_id = text if _SANE_ID.fullmatch(text) else f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        scope.setdefault("state", {})["request_id"] = request_id
        scope[RESPONSE_STATUS] = 0
        started = time.perf_counter()
        status = 0  # no answer started yet
        disconnected = False
        raw_id = request_id.encode()

        async def watched_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = scope[RESPONSE_STATUS] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw_id)]
                self._observe(scope, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, watched_receive, send_with_id)
        except Exception as exc:
            if (disconnected and not status) or _client_gone(exc):
                status = 499
                logger.info("client disconnected from %s %s before its answer was complete (request %s; %s)",
                            scope["method"], scope.get("path"), request_id, type(exc).__name__)
                return
            # Answered here rather than by Starlette's outermost handler, so that the 500 carries the
            # request id (in its header and its message) like every other answer.
            logger.exception("unhandled error on %s %s (request %s)", scope["method"], scope.get("path"), request_id)
            if status:
                raise
            status = 500
            body = json.dumps(error_body(
                "api_error", f"the server failed on this request (request id {request_id}); it was logged - retry, "
                             "and report the request id if it persists", code="internal_error")).encode()
            await send_with_id({"type": "http.response.start", "status": 500,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send_with_id({"type": "http.response.body", "body": body})
        else:
            if not status and disconnected:
                status = 499
                logger.info("client disconnected from %s %s before its answer (request %s)", scope["method"],
                            scope.get("path"), request_id)
        finally:
            # No answer and no disconnect: the server (uvicorn) answers 500 for an app that returned without one.
            self._count(scope, status or 500)

    def _observe(self, scope: Scope, seconds: float) -> None:
        key = (scope["method"], _route_template(scope))
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = HTTP_LATENCY.labels(*key)
        child.observe(seconds)

    def _count(self, scope: Scope, status: int) -> None:
        key = (scope["method"], _route_template(scope), status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = HTTP_REQUESTS.labels(key[0], key[1], str(status))
        child.inc()


def _route_template(scope: Scope) -> str:
    return getattr(scope.get("route"), "path", None) or "unmatched"


def _client_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is Starlette's word that the client's connection was gone (a read or a send found it
    closed). Other connection errors are not taken for it: they may be the route's own outgoing calls."""
    return isinstance(exc, ClientDisconnect)


_DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
_UI_PATH = "/ui"
# The dashboard's pages load scripts, styles and images from /ui/static only (no inline script); uPlot sets
# element styles from script, which style-src does not govern. connect-src: htmx polls and the run's SSE.
_UI_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           b"font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# The docs pages load Swagger UI and ReDoc from this server (fastapi-offline): nothing from elsewhere.
_DOCS_CSP = (b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
             b"img-src 'self' data:; frame-ancestors 'none'")


class SecurityHeaders:
    """Headers that keep browsers from sniffing, framing, leaking referrers or caching API data."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.common: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if hsts:
            self.common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        docs = path.startswith(_DOCS_PATHS)
        ui = path == _UI_PATH or path.startswith(_UI_PATH + "/")
        extra = [(b"content-security-policy", _DOCS_CSP if docs else _UI_CSP if ui else _API_CSP)]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {key.lower() for key, _ in headers}
                headers.extend(h for h in (*self.common, *extra) if h[0] not in present)
                if not docs and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class UploadLimit:
    """A larger body limit for one upload path, and the setting that sets it (named in the 413)."""

    max_bytes: int
    setting: str


class BodySizeLimit:
    """413 for a request body over ``max_bytes``, declared or streamed.

    ``uploads`` maps a path (exactly) to its own :class:`UploadLimit`: file uploads are allowed more
    than a JSON body, and only there.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, uploads: Mapping[str, UploadLimit] | None = None) -> None:
        self.app = app
        self.default = UploadLimit(max_bytes, "AGENTADAPTER_MAX_BODY_BYTES")
        self.uploads: Mapping[str, UploadLimit] = dict(uploads or {})

    @staticmethod
    def _message(limit: UploadLimit) -> str:
        return (f"the request body is larger than the {limit.max_bytes} bytes this server accepts here "
                f"({limit.setting}); send less")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads.get(scope.get("path", ""), self.default)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit.max_bytes:
            await self._refuse(send, limit)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    raise HTTPException(413, self._message(limit))
            return message

        if RESPONSE_STATUS in scope:  # RequestContext, outside, tells whether an answer has started
            tracked_send = send
        else:
            async def tracked_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    scope[RESPONSE_STATUS] = message["status"]
                await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except HTTPException as exc:
            if exc.status_code != 413 or scope.get(RESPONSE_STATUS):
                raise
            await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: UploadLimit) -> None:
        body = json.dumps(error_body("invalid_request_error", self._message(limit),
                                     code="request_too_large")).encode()
        headers: Iterable[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})


_FORM_TYPES = (b"multipart/form-data", b"application/x-www-form-urlencoded")
RESPONSE_STATUS = "agentadapter.response_status"
"""The scope key where :class:`RequestContext` keeps the answer's status (0 until it starts), so that the
middleware inside it need not wrap ``send`` again to know."""
CHECKED_BODY = "agentadapter.checked_body"
"""The scope key under which :class:`JSONBodyGuard` leaves its :class:`~agentadapter.server.payloads.CheckedBody`."""


class JSONBodyGuard:
    """Every request body is read (within the size limit) and checked before any route sees it.

    A body is refused with 422 in the one error shape when it nests too deep, holds too many values,
    too long a string, NaN or Infinity, a NUL character or a lone surrogate (see
    :mod:`agentadapter.server.payloads`), and when it is not JSON at all: 422 on the API, 400 on the
    OpenAI-compatible paths (``openai_paths``), as OpenAI answers. A body that passes is handed on
    unchanged, so the routes and FastAPI read it as usual; the check's result waits in the scope
    (``CHECKED_BODY``) for routes that parse by hand. Form bodies are left to the form parser.
    ``yaml_fields`` maps a path prefix to the top-level field that carries a YAML document there,
    loaded off the loop with a large body's check.
    """

    def __init__(self, app: ASGIApp, *, checker: PayloadChecker, openai_paths: Iterable[str] = (),
                 yaml_fields: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.checker = checker
        self.openai_paths = frozenset(openai_paths)
        self.yaml_fields = dict(yaml_fields or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        content_type = (_header(scope, b"content-type") or b"").split(b";", 1)[0].strip().lower()
        if content_type in _FORM_TYPES:
            await self.app(scope, receive, send)
            return
        raw, disconnected = await _read_body(receive)
        if disconnected:
            return  # the client left before sending its whole body: nobody to answer
        path: str = scope["path"]
        yaml_field = next((name for prefix, name in self.yaml_fields.items() if path.startswith(prefix)), None)
        checked: CheckedBody | None = None
        if raw:
            try:
                checked = await self.checker.check(raw, yaml_field=yaml_field)
            except PayloadRefused as exc:
                await _answer(send, exc.status, exc.message, code=exc.code, param=exc.param, details=exc.details)
                return
            except InvalidJSON as exc:
                status = 400 if path in self.openai_paths else 422
                await _answer(send, status, f"the request body is not valid JSON ({exc}); send a JSON object",
                              code="invalid_json")
                return
            scope[CHECKED_BODY] = checked
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        token = enter_request_payloads(self.checker.limits, checked)
        try:
            await self.app(scope, replay, send)
        finally:
            exit_request_payloads(token)


def _has_body(scope: Scope) -> bool:
    declared = _header(scope, b"content-length")
    if declared is not None:
        return declared.strip() not in (b"", b"0")
    return _header(scope, b"transfer-encoding") is not None


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether the client disconnected first (its size is limited by BodySizeLimit)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


async def _answer(send: Send, status: int, message: str, *, code: str, param: str | None = None,
                  details: Mapping[str, Any] | None = None) -> None:
    kind = "invalid_request_error" if status < 500 else "api_error"
    body = json.dumps(error_body(kind, message, code=code, param=param, details=details)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
