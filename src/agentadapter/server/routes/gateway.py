"""The OpenAI-compatible gateway: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Point any OpenAI client at ``<server>/v1`` with a tenant API key and every model id, alias or
failover route of the server's config answers in OpenAI's format. The call goes through the tenant's
facade (``state.tenant_llms``: its provider keys, its credits, its ``tenant`` tag), tagged
``source=gateway`` and with the calling key, so usage lands in the ledger like any other call. The
body is read and checked by hand (:mod:`agentadapter.server.gateway.requests`) and answered as
ready-made JSON bytes: this path is measured by ``bench/gateway.py`` and must add little to a
provider call. A stream is opened before the response starts, so a call that fails before its first
token (an unknown model, a rate limit, every target down) gets a real error status; a failure
later in the stream is sent as a ``data: {"error": ...}`` event, and the stream ends.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from agentadapter.server.deps import CompletionsWrite, ModelsRead, StateDep
from agentadapter.server.gateway.calls import STREAM_HEADERS, open_call
from agentadapter.server.gateway.models import list_models, model_entry
from agentadapter.server.gateway.requests import call_tags, read_chat_request
from agentadapter.server.gateway.responses import ChunkWriter, completion_body, json_response, response_model
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.routes.messages import MESSAGES_PATHS
from agentadapter.server.routes.responses import RESPONSES_PATH
from agentadapter.server.schemas import error_responses

router = APIRouter(prefix=API_PREFIX, tags=["gateway"])
OPENAI_JSON_PATHS = frozenset({f"{API_PREFIX}/chat/completions", f"{API_PREFIX}/embeddings", RESPONSES_PATH,
                               *MESSAGES_PATHS})
"""Paths that answer a body that is not JSON as OpenAI and Anthropic do (400), where the rest of the API answers
422."""


@router.post("/chat/completions", responses=error_responses(402, 404, 502, 503), openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "An OpenAI Chat Completions request."}}}}})
async def chat_completions(request: Request, principal: CompletionsWrite, state: StateDep) -> Response:
    """OpenAI's Chat Completions, for every model the server can reach (``stream: true`` answers as SSE)."""
    tags = call_tags(principal.key_id)
    chat = await read_chat_request(request, tags, offload_bytes=state.server.body_offload_bytes)
    call = await open_call(state, principal, chat.model)
    chat.apply(call.plan)
    if not chat.stream:
        response = await call.generate(chat.request)
        return json_response(completion_body(response, legacy_functions=chat.legacy_functions),
                             headers=call.headers(response_model(response)))
    first, events = await call.open_stream(chat.request)
    answered_by = call.answered_by(first)
    writer = ChunkWriter(answered_by, include_usage=chat.include_usage, legacy_functions=chat.legacy_functions)
    return StreamingResponse(call.frames(first, events, writer), media_type="text/event-stream",
                             headers={**STREAM_HEADERS, **call.headers(answered_by)})


@router.get("/models")
async def models(principal: ModelsRead, state: StateDep) -> Response:
    """OpenAI's model list: the catalog and the config's aliases, with capabilities, prices and availability."""
    return json_response(await list_models(await state.tenant_llms.get(principal.tenant_id)))


@router.get("/models/{model:path}", responses=error_responses(400))
async def get_model(model: str, principal: ModelsRead, state: StateDep) -> Response:
    """One model (``provider/model`` or an alias); 404 ``model_not_found`` for an unknown one."""
    return json_response(model_entry(await state.tenant_llms.get(principal.tenant_id), model))
