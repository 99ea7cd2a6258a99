"""One error shape for every response: ``{"error": {"type", "message", "code", "param", "details"}}``.

It is a superset of OpenAI's, so OpenAI clients read our errors. :class:`APIError` is what services
and dependencies raise; :func:`install_error_handlers` maps everything else onto the same shape:
request validation (422, ``param`` names the field: ``tools[1]``, ``output_schema.type``),
Starlette's HTTP errors (404 route, 405, 413 from the body limit), the store's ``RecordNotFound``
(404 - also what another tenant's resource looks like), ``RecordConflict`` (409) and
``InvalidCursor`` (422), the library's configuration and request errors (422), a tenant's exhausted
credits (402, ``insufficient_credits``), and anything unexpected (500, logged with the request id,
which the message repeats). Messages and details are cleaned of secrets (:func:`error_body`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentadapter.llm.errors import ConfigurationError, InsufficientCreditsError, InvalidRequestError
from agentadapter.llm.schema_safety import UnsafeSchemaError
from agentadapter.observability.logging import get_logger
from agentadapter.observability.redact import redact, redact_text
from agentadapter.store.errors import InvalidCursor, RecordConflict, RecordNotFound

__all__ = ["APIError", "error_body", "error_response", "install_error_handlers", "param_of"]

# get_logger puts the redacting filter on the "agentadapter.server" logger, which the middleware,
# the executor and the gateway log through as well: nothing they log can quote a key.
logger = get_logger("agentadapter.server")

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error", 415: "invalid_request_error",
    422: "invalid_request_error", 429: "rate_limit_error",
}
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


class APIError(Exception):
    """An error answer: status, OpenAI-style type, a message that says what to do, and where."""

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


def error_body(type: str, message: str, *, code: str | None = None, param: str | None = None,
               details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The error shape. Every answer's message and details pass through here and are cleaned of
    secrets: provider errors are masked where they are made, this catches anything else."""
    return {"error": {"type": type, "message": redact_text(message), "code": code, "param": param,
                      "details": redact(dict(details)) if details else None}}


def error_response(error: APIError) -> JSONResponse:
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
    assert isinstance(exc, APIError)
    return error_response(exc)


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
    return error_response(APIError(422, f"{where}{first['message']}{more}", code="validation_error",
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
    return error_response(APIError(status, message, code=_CODES.get(status), headers=headers))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordNotFound)
    return error_response(APIError(404, str(exc), code=f"{exc.resource.replace(' ', '_')}_not_found"))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordConflict)
    return error_response(APIError(409, str(exc), code="conflict", param=exc.param))


async def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    return error_response(APIError(422, str(exc), code="invalid_cursor", param="cursor"))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    return error_response(APIError(422, str(exc), code="invalid_request"))


async def _unsafe_schema(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnsafeSchemaError)
    return error_response(APIError(422, str(exc), code="invalid_schema", param=exc.param))


async def _insufficient_credits(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InsufficientCreditsError)
    return error_response(APIError(402, str(exc), type="billing_error", code="insufficient_credits", details={
        "balance_usd": exc.balance_usd, "needed_usd": exc.needed_usd}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id(request)
    logger.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id)
    return error_response(APIError(
        500, f"the server failed on this request (request id {request_id}); it was logged - retry, and report the "
             "request id if it persists", code="internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RecordNotFound, _not_found)
    app.add_exception_handler(RecordConflict, _conflict)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(ConfigurationError, _invalid_request)
    app.add_exception_handler(InvalidRequestError, _invalid_request)
    app.add_exception_handler(UnsafeSchemaError, _unsafe_schema)  # a tenant's JSON schema: param says where
    app.add_exception_handler(InsufficientCreditsError, _insufficient_credits)  # 402; other budget refusals unchanged
    app.add_exception_handler(Exception, _unexpected)
