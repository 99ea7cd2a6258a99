"""One error shape for every response: ``{"error": {"type", "message", "code", "param", "details"}}``.

It is a superset of OpenAI's, so OpenAI clients read our errors. :class:`HTTPProblem` (an HTTP answer,
not a failure of the library: it is outside the :mod:`agentadapter.errors` tree) is what routes and
dependencies raise; the application layer's errors (:mod:`agentadapter.service.errors`) map to one
status each (:data:`SERVICE_STATUS`: ``InvalidInput`` 422, ``NotAllowed`` 403, ``NotFound`` 404,
``Conflict`` 409, ``PaymentRequired`` 402, ``Unavailable`` 503 with ``Retry-After``), keeping their
code, param, message and details; :func:`install_error_handlers` maps everything else onto the same shape:
request validation (422, ``param`` names the field: ``tools[1]``, ``output_schema.type``),
Starlette's HTTP errors (404 route, 405, 413 from the body limit), the store's ``RecordNotFound``
(404 - also what another tenant's resource looks like), ``RecordConflict`` (409) and
``InvalidCursor`` (422), the library's configuration and request errors (422), a tenant's exhausted
credits (402, ``insufficient_credits``), and anything unexpected (500, logged with the request id,
which the message repeats). Messages and details are cleaned of secrets (:func:`error_body`).

Shared state going away is not a bug of the request: the database unreachable (or SQLite locked past
its busy timeout) answers 503 ``database_unavailable``, Redis unreachable 503
``shared_state_unavailable``, both with ``Retry-After``. The message is for the API client (what
happened, when to retry); which server and what the driver said go to the log, for the operator.
Nothing needs a restart when the server is back: the next request reconnects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentadapter.errors import ConfigurationError, InvalidRequestError, RedisUnavailableError
from agentadapter.llm.errors import InsufficientCreditsError
from agentadapter.llm.schema_safety import UnsafeSchemaError
from agentadapter.observability.logging import get_logger
from agentadapter.observability.redact import redact, redact_text
from agentadapter.service.errors import (
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    PaymentRequired,
    ServiceError,
    Unavailable,
)
from agentadapter.store.database import database_outage
from agentadapter.store.errors import DatabaseUnavailable, InvalidCursor, RecordConflict, RecordNotFound

__all__ = ["OUTAGE_RETRY_AFTER_S", "SERVICE_STATUS", "HTTPProblem", "error_body", "error_response", "from_service",
           "install_error_handlers", "outage_code", "outage_error", "param_of"]

# get_logger puts the redacting filter on the "agentadapter.server" logger, which the middleware,
# the executor and the gateway log through as well: nothing they log can quote a key.
logger = get_logger("agentadapter.server")

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error", 415: "invalid_request_error",
    422: "invalid_request_error", 429: "rate_limit_error",
}
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


class HTTPProblem(Exception):
    """An error answer: status, OpenAI-style type, a message that says what to do, and where.

    Not the library's :class:`~agentadapter.llm.errors.APIError` (a backend that failed): this is
    what the API answers its own client, so it stays outside the ``AgentAdapterError`` tree."""

    def __init__(
        self, status: int, message: str, *, type: str | None = None, code: str | None = None,
        param: str | None = None, details: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "api_error")
        self.code = code
        self.param = param
        self.details = dict(details) if details else None
        self.headers = dict(headers) if headers else None


SERVICE_STATUS: dict[type[ServiceError], int] = {
    InvalidInput: 422, NotAllowed: 403, NotFound: 404, Conflict: 409, PaymentRequired: 402, Unavailable: 503,
}
"""The HTTP status of each of the application layer's errors (a subclass takes its nearest listed base's)."""
_SERVICE_TYPES = {402: "billing_error", 503: "api_error"}


def from_service(error: ServiceError) -> HTTPProblem:
    """The answer to an application-layer error: its status, and its message, code, param and details as they are."""
    status = next((code for kind, code in SERVICE_STATUS.items() if isinstance(error, kind)), 400)
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, Unavailable) else None
    return HTTPProblem(status, error.message, type=_SERVICE_TYPES.get(status), code=error.code, param=error.param,
                    details=error.details, headers=headers)


def error_body(type: str, message: str, *, code: str | None = None, param: str | None = None,
               details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The error shape. Every answer's message and details pass through here and are cleaned of
    secrets: provider errors are masked where they are made, this catches anything else."""
    return {"error": {"type": type, "message": redact_text(message), "code": code, "param": param,
                      "details": redact(dict(details)) if details else None}}


def error_response(error: HTTPProblem) -> JSONResponse:
    return JSONResponse(error_body(error.type, error.message, code=error.code, param=error.param,
                                   details=error.details), status_code=error.status, headers=error.headers)


def param_of(loc: Sequence[Any]) -> str | None:
    """A validation location as a field path: ``("body", "tools", 1)`` -> ``tools[1]``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or None


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPProblem)
    return error_response(exc)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(from_service(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        message = str(item.get("msg", "invalid value"))
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        problems.append({"param": param_of(item.get("loc", ())), "message": message, "type": item.get("type")})
    first = problems[0] if problems else {"param": None, "message": "the request is not valid"}
    where = f"{first['param']}: " if first["param"] else ""
    more = f" (and {len(problems) - 1} more problem(s), listed in details.errors)" if len(problems) > 1 else ""
    return error_response(HTTPProblem(422, f"{where}{first['message']}{more}", code="validation_error",
                                   param=first["param"], details={"errors": problems}))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = str(exc.detail) if exc.detail else "error"
    if status == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs for the methods it takes"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(HTTPProblem(status, message, code=_CODES.get(status), headers=headers))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordNotFound)
    return error_response(HTTPProblem(404, str(exc), code=f"{exc.resource.replace(' ', '_')}_not_found"))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordConflict)
    return error_response(HTTPProblem(409, str(exc), code="conflict", param=exc.param))


async def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    return error_response(HTTPProblem(422, str(exc), code="invalid_cursor", param="cursor"))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    return error_response(HTTPProblem(422, str(exc), code="invalid_request"))


async def _unsafe_schema(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnsafeSchemaError)
    return error_response(HTTPProblem(422, str(exc), code="invalid_schema", param=exc.param))


async def _insufficient_credits(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InsufficientCreditsError)
    return error_response(HTTPProblem(402, str(exc), type="billing_error", code="insufficient_credits", details={
        "balance_usd": exc.balance_usd, "needed_usd": exc.needed_usd}))


#: Seconds a client is told to wait before retrying when the database or Redis is away.
OUTAGE_RETRY_AFTER_S = 5
_OUTAGES = {
    "database_unavailable": "the service cannot reach its database right now; retry in a few seconds",
    "shared_state_unavailable": "the service cannot reach its shared state (Redis) right now; retry in a few seconds",
}


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # Redis is an optional extra
        return ()
    return RedisConnectionError, RedisTimeoutError


def outage_code(exc: BaseException) -> str | None:
    """``database_unavailable`` or ``shared_state_unavailable`` if ``exc`` (or its cause) is the
    database or Redis not answering; None for anything else."""
    if database_outage(exc):
        return "database_unavailable"
    redis_errors: tuple[type[BaseException], ...] = (RedisUnavailableError, *_redis_errors())
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis_errors):
            return "shared_state_unavailable"
        current = current.__cause__ or current.__context__
    return None


def outage_error(exc: BaseException, where: str) -> HTTPProblem | None:
    """The 503 for ``exc`` if it is the database or Redis not answering (the details logged for the
    operator, under ``where``), else None."""
    code = outage_code(exc)
    if code is None:
        return None
    logger.warning("%s on %s: %s: %s", code.replace("_", " "), where, type(exc).__name__, exc)
    return HTTPProblem(503, _OUTAGES[code], type="api_error", code=code,
                    headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)})


def _outage_response(request: Request, exc: BaseException, code: str) -> JSONResponse:
    where = f"{request.method} {request.url.path} (request {_request_id(request)})"
    error = outage_error(exc, where) or HTTPProblem(503, _OUTAGES[code], type="api_error", code=code,
                                                    headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)})
    return error_response(error)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return _outage_response(request, exc, "database_unavailable")


async def _maybe_outage(request: Request, exc: Exception) -> JSONResponse:
    """Driver and Redis errors that reached the API untranslated: a 503 if they are an outage."""
    code = outage_code(exc)
    if code is not None:
        return _outage_response(request, exc, code)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id(request)
    logger.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id)
    return error_response(HTTPProblem(
        500, f"the server failed on this request (request id {request_id}); it was logged - retry, and report the "
             "request id if it persists", code="internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPProblem, _api_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RecordNotFound, _not_found)
    app.add_exception_handler(RecordConflict, _conflict)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(ConfigurationError, _invalid_request)
    app.add_exception_handler(InvalidRequestError, _invalid_request)
    app.add_exception_handler(UnsafeSchemaError, _unsafe_schema)  # a tenant's JSON schema: param says where
    app.add_exception_handler(InsufficientCreditsError, _insufficient_credits)  # 402; other budget refusals unchanged
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)  # 503, Retry-After
    # Outages that reached a route untranslated (a driver's, Redis's errors): 503s too, else a 500.
    for kind in (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, RedisUnavailableError, OSError,
                 TimeoutError, *_redis_errors()):
        app.add_exception_handler(kind, _maybe_outage)
    app.add_exception_handler(Exception, _unexpected)
