"""OpenAI's Responses API: ``POST /v1/responses``, over every backend and route.

Point an OpenAI client at ``<server>/v1`` and ``client.responses.create(...)`` (the default path of
``openai-agents``, of ``langchain-openai`` with ``use_responses_api`` and of pydantic-ai's
``OpenAIResponsesModel``) answers in the Responses shape, streamed as typed events, whatever format
the model's provider speaks. The call takes the chat completions' path
(:mod:`agentadapter.server.gateway.calls`: the tenant's facade with its keys, credits and limits;
usage tagged ``source=gateway``); the body is read and the answer written by
:mod:`agentadapter.server.gateway.responses_format`. With ``store`` (the default, as at OpenAI) the
answer's conversation is kept per tenant for ``previous_response_id``
(:mod:`agentadapter.service.responses`), as the tenant's compliance policy stores personal data.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from agentadapter.llm.messages import Response as Answer
from agentadapter.llm.messages import StreamEvent
from agentadapter.server.deps import CompletionsWrite, StateDep
from agentadapter.server.errors import HTTPProblem
from agentadapter.server.gateway.calls import STREAM_HEADERS, open_call
from agentadapter.server.gateway.requests import bad_request, call_tags, read_call
from agentadapter.server.gateway.responses import json_response, response_model
from agentadapter.server.gateway.responses_format import (
    ResponseStreamWriter,
    new_response_id,
    parse_responses_body,
    response_object,
)
from agentadapter.server.routes._prefix import API_PREFIX
from agentadapter.server.schemas import error_responses
from agentadapter.service.errors import InvalidInput, NotFound
from agentadapter.service.responses import load_conversation, response_store, save_conversation

__all__ = ["RESPONSES_PATH", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["gateway"])
logger = logging.getLogger("agentadapter.server")

RESPONSES_PATH = f"{API_PREFIX}/responses"


@router.post("/responses", responses=error_responses(402, 404, 502, 503), openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "An OpenAI Responses request."}}}}})
async def responses(request: Request, principal: CompletionsWrite, state: StateDep) -> Response:
    """OpenAI's Responses API, for every model the server can reach (``stream: true`` answers as typed SSE events)."""
    tags = call_tags(principal.key_id)
    responses_call = await read_call(request, lambda body: parse_responses_body(body, tags),
                                     offload_bytes=state.server.body_offload_bytes)
    call = await open_call(state, principal, responses_call.model)
    responses_call.apply(call.plan)
    store = response_store(call.llm.file_config.gateway, state.db, state.redis)
    if responses_call.previous_response_id is not None:
        try:
            earlier = await load_conversation(store, principal.tenant_id, responses_call.previous_response_id)
        except InvalidInput as exc:
            raise bad_request(exc.param, exc.message, exc.code) from exc
        except NotFound as exc:
            raise HTTPProblem(404, exc.message, code="previous_response_not_found",
                              param="previous_response_id") from exc
        responses_call.continue_from(earlier)
    response_id = new_response_id()
    keep = store is not None and responses_call.store

    async def remember(answer: Answer) -> None:
        if keep and store is not None:
            await save_conversation(store, principal.tenant_id, response_id,
                                    [*responses_call.conversation, answer.message], responses_call.model,
                                    user_id=principal.user_id)

    echo = dict(responses_call.echo)
    if not responses_call.stream:
        answer = await call.generate(responses_call.request)
        await remember(answer)
        answered_by = response_model(answer)
        return json_response(response_object(answer, response_id, answered_by, echo,
                                             previous_response_id=responses_call.previous_response_id,
                                             store=keep), headers=call.headers(answered_by))
    first, events = await call.open_stream(responses_call.request)
    answered_by = call.answered_by(first)
    writer = ResponseStreamWriter(response_id, answered_by, echo,
                                  previous_response_id=responses_call.previous_response_id, store=keep)
    if first is not None and first.kind == "finish" and first.response is not None:
        await remember(first.response)
    return StreamingResponse(call.frames(first, _remembered(events, remember), writer),
                             media_type="text/event-stream", headers={**STREAM_HEADERS, **call.headers(answered_by)})


async def _remembered(events: AsyncIterator[StreamEvent],
                      remember: Callable[[Answer], Awaitable[None]]) -> AsyncIterator[StreamEvent]:
    """The events, the answer stored as the finish event passes (before the client hears it is complete)."""
    try:
        async for event in events:
            if event.kind == "finish" and event.response is not None:
                await remember(event.response)
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]
