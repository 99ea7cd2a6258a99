"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``, over every backend.

Point the ``anthropic`` SDK (or Claude Code, or any Anthropic-format tool) at the server's root URL
with a tenant API key, sent as ``x-api-key`` or as a bearer token; ``anthropic-version`` and
``anthropic-beta`` headers are accepted and need no particular value. Every model id, alias or route
answers in Anthropic's shape, streamed as Anthropic streams, whatever format its provider speaks.
The call takes the same path as a chat completion (:mod:`agentadapter.server.gateway.calls`: the
tenant's facade, its keys, credits and limits, usage tagged ``source=gateway``); only the reading of
the body and the writing of the answer differ (:mod:`agentadapter.server.gateway.anthropic_format`).
Errors, authentication failures included, are answered in Anthropic's error shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from agentadapter.llm.errors import AgentAdapterError, CapabilityError, InsufficientCreditsError
from agentadapter.server.deps import StateDep
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.gateway.anthropic_format import (
    MessageStreamWriter,
    error_payload,
    message_body,
    parse_count_tokens_body,
    parse_messages_body,
)
from agentadapter.server.gateway.calls import STREAM_HEADERS, authenticate, open_call
from agentadapter.server.gateway.errors import gateway_error
from agentadapter.server.gateway.requests import call_tags, read_call
from agentadapter.server.gateway.responses import json_response, response_model
from agentadapter.server.routes._prefix import API_PREFIX

__all__ = ["MESSAGES_PATHS", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["gateway"])

MESSAGES_PATHS = frozenset({f"{API_PREFIX}/messages", f"{API_PREFIX}/messages/count_tokens"})

_ANTHROPIC_ERROR = {
    "type": "object", "required": ["type", "error"], "description": "Anthropic's error shape (our code and param ride "
    "along in error)", "properties": {"type": {"const": "error"}, "error": {
        "type": "object", "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}}}
_STATUSES = {
    400: "The body is not valid (param names the field), or a parameter a target of the model cannot honour.",
    401: "No API key (x-api-key or a bearer token), or one that is not valid.",
    402: "The tenant's prepaid credits do not cover the call.", 403: "The key's role or scopes do not allow this.",
    404: "No such model.", 413: "The request body is larger than the server accepts.",
    422: "A JSON schema of the body is one the server refuses.", 429: "A rate limit or a budget; see Retry-After.",
    502: "The provider failed, or every target of the route did.", 503: "The provider is overloaded, or a breaker "
    "is open.", 504: "The provider did not answer in time.",
}


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Anthropic's error shape; the body guard's refusals (size, JSON) come in the API's own shape before this route."""
    schema = {"anyOf": [_ANTHROPIC_ERROR, {"$ref": "#/components/schemas/ErrorResponse"}]}
    return {status: {"description": _STATUSES[status], "content": {"application/json": {"schema": schema}}}
            for status in statuses}


_ALL = (400, 401, 402, 403, 404, 413, 422, 429, 502, 503, 504)

_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "An Anthropic Messages request."}}}}}


def _error(problem: HTTPProblem) -> Response:
    return json_response(error_payload(problem), problem.status, headers=problem.headers)


@router.post("/messages", responses=_error_responses(*_ALL), openapi_extra=_BODY)
async def messages(request: Request, state: StateDep) -> Response:
    """Anthropic's Messages, for every model the server can reach (``stream: true`` answers as Anthropic's SSE)."""
    try:
        principal = await authenticate(request)
        tags = call_tags(principal.key_id)
        anthropic_call = await read_call(request, lambda body: parse_messages_body(body, tags),
                                         offload_bytes=state.server.body_offload_bytes)
        call = await open_call(state, principal, anthropic_call.model)
        anthropic_call.apply(call.plan)
        if not anthropic_call.stream:
            response = await call.generate(anthropic_call.request)
            answered_by = response_model(response)
            return json_response(message_body(response, answered_by), headers=call.headers(answered_by))
        first, events = await call.open_stream(anthropic_call.request)
    except HTTPProblem as problem:
        return _error(problem)
    except InsufficientCreditsError as exc:
        return _error(gateway_error(exc, ""))  # 402, as the API's own handler answers it
    answered_by = call.answered_by(first)
    return StreamingResponse(call.frames(first, events, MessageStreamWriter(answered_by)),
                             media_type="text/event-stream", headers={**STREAM_HEADERS, **call.headers(answered_by)})


@router.post("/messages/count_tokens", responses=_error_responses(*_ALL), openapi_extra=_BODY)
async def count_tokens(request: Request, state: StateDep) -> Response:
    """The input tokens a Messages request would have, counted by the provider where it can (else locally)."""
    try:
        principal = await authenticate(request)
        model, neutral = await read_call(request, parse_count_tokens_body,
                                         offload_bytes=state.server.body_offload_bytes)
        call = await open_call(state, principal, model)
        try:
            try:
                count = await call.llm.count_tokens(model, neutral, exact=True)
            except CapabilityError:  # no counting endpoint and no tokenizer here: the local estimate
                count = await call.llm.count_tokens(model, neutral)
        except AgentAdapterError as exc:
            raise call.failure(exc) from exc
    except HTTPProblem as problem:
        return _error(problem)
    return json_response({"input_tokens": count.tokens}, headers={"x-agentadapter-token-count": count.method})
