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

import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from agentadapter.llm.errors import AgentAdapterError, InsufficientCreditsError
from agentadapter.llm.messages import StreamEvent
from agentadapter.server.deps import CompletionsWrite, ModelsRead, StateDep
from agentadapter.server.errors import error_body
from agentadapter.server.gateway.errors import gateway_error
from agentadapter.server.gateway.models import check_model, list_models, model_entry
from agentadapter.server.gateway.requests import call_tags, read_chat_request
from agentadapter.server.gateway.responses import ChunkWriter, completion_body, json_response, sse_data
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import error_responses

router = APIRouter(prefix=API_PREFIX, tags=["gateway"])
logger = logging.getLogger("agentadapter.server")

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
OPENAI_JSON_PATHS = frozenset({f"{API_PREFIX}/chat/completions", f"{API_PREFIX}/embeddings"})
"""Paths that answer a body that is not JSON as OpenAI does (400), where the rest of the API answers 422."""


@router.post("/chat/completions", responses=error_responses(402, 404, 502, 503), openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "An OpenAI Chat Completions request."}}}}})
async def chat_completions(request: Request, principal: CompletionsWrite, state: StateDep) -> Response:
    """OpenAI's Chat Completions, for every model the server can reach (``stream: true`` answers as SSE)."""
    tags = call_tags(principal.key_id)
    call = await read_chat_request(request, tags, offload_bytes=state.server.body_offload_bytes)
    llm = await state.tenant_llms.get(principal.tenant_id)
    check_model(llm, call.model)
    if not call.stream:
        try:
            response = await llm.generate_request(call.model, call.request)
        except InsufficientCreditsError:
            raise  # the API's own 402 handler answers it
        except AgentAdapterError as exc:
            raise gateway_error(exc, call.model) from exc
        return json_response(completion_body(response))
    events = llm.stream_request(call.model, call.request).__aiter__()
    try:
        first = await anext(events, None)
    except InsufficientCreditsError:
        raise
    except AgentAdapterError as exc:
        raise gateway_error(exc, call.model) from exc
    writer = ChunkWriter(call.model, include_usage=call.include_usage)
    return StreamingResponse(_frames(first, events, writer, call.model), media_type="text/event-stream",
                             headers=_STREAM_HEADERS)


async def _frames(first: StreamEvent | None, events: AsyncIterator[StreamEvent], writer: ChunkWriter,
                  model: str) -> AsyncIterator[bytes]:
    yield writer.start()
    event = first
    try:
        while event is not None:
            if event.kind == "finish":
                assert event.response is not None
                for frame in writer.finish(event.response):
                    yield frame
                return
            chunk = writer.event(event)
            if chunk is not None:
                yield chunk
            event = await anext(events, None)
    except AgentAdapterError as exc:
        error = gateway_error(exc, model)
        yield sse_data(error_body(error.type, error.message, code=error.code, param=error.param,
                                  details=error.details))
        return
    except Exception as exc:  # the status line is sent: the client can only learn of it in the stream
        logger.exception("the gateway stream for %s failed", model)
        yield sse_data(error_body("api_error", f"the stream failed on the server: {type(exc).__name__}; "
                                               "it was logged - retry the request", code="internal_error"))
        return
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield sse_data(error_body("api_error", "the provider's stream ended without finishing the answer; retry the "
                                           "request", code="stream_incomplete"))


@router.get("/models")
async def models(principal: ModelsRead, state: StateDep) -> Response:
    """OpenAI's model list: the catalog and the config's aliases, with capabilities, prices and availability."""
    return json_response(list_models(await state.tenant_llms.get(principal.tenant_id)))


@router.get("/models/{model:path}", responses=error_responses(400))
async def get_model(model: str, principal: ModelsRead, state: StateDep) -> Response:
    """One model (``provider/model`` or an alias); 404 ``model_not_found`` for an unknown one."""
    return json_response(model_entry(await state.tenant_llms.get(principal.tenant_id), model))
