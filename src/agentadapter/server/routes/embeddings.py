"""``POST /v1/embeddings``: OpenAI's Embeddings API for every embedding model the server can reach.

Point an OpenAI client at ``<server>/v1`` and ``client.embeddings.create(model=..., input=...)`` answers
in OpenAI's shape, vectors as float lists or as base64 of float32 (``encoding_format``; the official
``openai`` package asks for base64 unless told otherwise). The call goes through the tenant's facade
(:class:`~agentadapter.service.tenancy.TenantLLMs`: its provider keys, its credits, its ``tenant``
tag), tagged ``source=gateway``, with the calling key (and ``user`` as ``end_user``), so its cost
shows in ``/v1/usage`` like a chat call's. It needs the same scope as ``/v1/chat/completions``
(``completions:write``): a key that may spend on completions may spend on embeddings, and the same consents
of the caller's user (:func:`~agentadapter.server.gateway.calls.check_consents`). Refused with a
400 naming the field: token arrays (OpenAI accepts them, but they are another tokenizer's ids,
meaningless to other providers), empty texts, unknown fields, and texts longer than every target of
the model reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agentadapter.llm.embedding_calls import embedding_request
from agentadapter.llm.embeddings import EmbeddingRequest, EmbeddingResponse, encode_base64_vector
from agentadapter.llm.errors import AgentAdapterError, InsufficientCreditsError, InvalidRequestError
from agentadapter.server.deps import CompletionsWrite, StateDep
from agentadapter.server.gateway.calls import MODEL_HEADER, ROUTE_HEADER, check_consents
from agentadapter.server.gateway.errors import gateway_error
from agentadapter.server.gateway.models import check_model
from agentadapter.server.gateway.requests import bad_request, call_tags, check_fields, parse_body, required_model
from agentadapter.server.gateway.responses import json_response
from agentadapter.server.middleware import CHECKED_BODY
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import error_responses

__all__ = ["EMBEDDINGS_PATH", "parse_embedding_body", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["gateway"])

EMBEDDINGS_PATH = f"{API_PREFIX}/embeddings"
_ACCEPTED = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


@router.post("/embeddings", responses=error_responses(402, 404, 502, 503), openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "An OpenAI Embeddings request."}}}}})
async def embeddings(request: Request, principal: CompletionsWrite, state: StateDep) -> Response:
    """OpenAI's Embeddings, for every embedding model the server can reach (float or base64 vectors)."""
    tags = call_tags(principal.key_id)
    body = parse_body(await request.body(), request.scope.get(CHECKED_BODY))
    model, call, base64 = parse_embedding_body(body)
    if body.get("user"):
        tags["end_user"] = body["user"]
    await check_consents(state, principal)
    llm = await state.tenant_llms.get(principal.tenant_id)
    check_model(llm, model)
    try:
        response = await llm.embed(model, call.inputs, dimensions=call.dimensions, tags=tags)
    except InsufficientCreditsError:
        raise  # the API's own 402 handler answers it
    except InvalidRequestError as exc:
        raise bad_request("input", str(exc)) from exc
    except AgentAdapterError as exc:
        raise gateway_error(exc, model) from exc
    answered_by = f"{response.provider}/{response.model}" if response.provider else response.model
    return json_response(embedding_body(response, model, base64=base64),
                         headers={ROUTE_HEADER: model, MODEL_HEADER: answered_by})


def parse_embedding_body(body: Mapping[str, Any]) -> tuple[str, EmbeddingRequest, bool]:
    """(model, the checked request, whether to answer base64); a 400 :class:`HTTPProblem` naming the field."""
    check_fields(body, _ACCEPTED, "this gateway's embeddings")
    model = required_model(body, "openai/text-embedding-3-small")
    raw = body.get("input")
    if raw is None:
        raise bad_request("input", "input is required: a string or a list of strings", "missing_required")
    if isinstance(raw, list) and raw and (isinstance(raw[0], int | list)):
        raise bad_request("input", "token arrays are not accepted here: they are one tokenizer's ids, which other "
                                   "providers cannot read; send the text itself", "unsupported_value")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise bad_request("encoding_format", f"encoding_format must be 'float' or 'base64', not {encoding!r}")
    if body.get("user") is not None and not isinstance(body.get("user"), str):
        raise bad_request("user", "user must be a string")
    try:
        call = embedding_request(raw, dimensions=body.get("dimensions"))
    except InvalidRequestError as exc:
        param = "dimensions" if str(exc).startswith("dimensions") else "input"
        raise bad_request(param, str(exc)) from exc
    return model, call, encoding == "base64"


def embedding_body(response: EmbeddingResponse, model: str, *, base64: bool) -> dict[str, Any]:
    """OpenAI's answer: a list of ``embedding`` objects in input order, and the input tokens."""
    tokens = response.usage.input_tokens
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": index,
                  "embedding": encode_base64_vector(vector) if base64 else vector}
                 for index, vector in enumerate(response.vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
