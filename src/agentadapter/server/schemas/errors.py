"""The error responses of the OpenAPI document: the error shape as a model, and which route can answer which.

Every ``/v1`` operation can answer 401 (no or a wrong key), 403 (the role or scopes do not allow it)
and 429 (a rate limit, or too many failed authentications); one with parameters or a body also 422
(validation), one with a body also 400 (a body that cannot be parsed) and 413 (too large), and one
with a path parameter also 404 (no such resource in the caller's tenant). :func:`document_errors`
adds these to the generated document by that rule, so a new route cannot forget them; a route names
the statuses only it can answer (409 on a name taken, 402 when credits run out, ...) with
``responses=error_responses(409)``. All of them in the one error shape, :class:`ErrorResponse`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorDetail", "ErrorResponse", "document_errors", "error_responses"]


class ErrorDetail(BaseModel):
    type: str = Field(description="OpenAI-style kind: invalid_request_error, authentication_error, ...")
    message: str = Field(description="What happened and what to do about it.")
    code: str | None = Field(description="A stable machine-readable code (validation_error, agent_not_found, ...).")
    param: str | None = Field(description="The field at fault, as a path (tools[1], output_schema.type).")
    details: dict[str, Any] | None = Field(description="More about it: every validation problem, the limits hit, ...")


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"type", "message", "code", "param", "details"}}``."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "The request body could not be parsed, or (the gateway) a field is not valid.",
    401: "No API key or token, or one that is not valid.",
    402: "The tenant's prepaid credits do not cover the call.",
    403: "The key's role or scopes do not allow this.",
    404: "No such resource in the caller's tenant.",
    409: "The request conflicts with the resource's state (a name taken, a run that has already ended).",
    413: "The request body is larger than the server accepts.",
    415: "The body's content type is not one this route reads.",
    422: "A parameter or a field of the body is not valid; param names it.",
    502: "Every provider target the model routes to failed (the gateway).",
    503: "The provider target's circuit breaker is open (the gateway); Retry-After says when to retry.",
    429: "Too many requests: a rate limit, or too many failed authentications; Retry-After says when to retry.",
}
_REF = "#/components/schemas/ErrorResponse"


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route (or router) that can also answer ``statuses``, in the error shape."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


def _response(status: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": {"$ref": _REF}}}}


def document_errors(schema: dict[str, Any], prefix: str) -> None:
    """Add the error responses every operation under ``prefix`` can give to the OpenAPI ``schema``, in place.

    FastAPI documents a 422 of its own shape (``HTTPValidationError``), which our handler never
    sends: it is replaced by the error shape, and its models are dropped from the components.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    model = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(model.pop("$defs", {}))
    components["ErrorResponse"] = model
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(prefix + "/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters") or []
            statuses = {401, 403, 429}
            if parameters or "requestBody" in operation:
                statuses.add(422)
            if "requestBody" in operation:
                statuses |= {400, 413}
            if any(p.get("in") == "path" for p in parameters):
                statuses.add(404)
            if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                del responses["422"]
            for status in sorted(statuses):
                responses.setdefault(str(status), _response(status))
    if "#/components/schemas/HTTPValidationError" not in json.dumps(schema.get("paths", {})):
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
