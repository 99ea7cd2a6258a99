"""One pipeline for every client format: a neutral request through the tenant's facade, answered or streamed.

Chat Completions, Anthropic Messages and the Responses API differ only in how they read a body and
write an answer. What lies between is here, once: the tenant's facade (its provider keys, credits and
``tenant`` tag; usage recorded with ``source=gateway`` and the calling key), the consents the
tenant's compliance policy requires of the caller's user (:func:`check_consents`: a 403
``consent_required``), the model check, the parameter plan of the route (:mod:`.params`), the error
translation (:mod:`.errors`), the headers that name the route and the model that answered, and the
stream loop that turns events into a format's frames through a :class:`FrameWriter`. A stream is
opened before the response starts, so a call that fails before its first event gets a real error
status; later failures become the format's error frame.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request as HTTPRequest

from agentadapter.llm.client import LLM
from agentadapter.llm.errors import AgentAdapterError, InsufficientCreditsError
from agentadapter.llm.messages import Request, Response, StreamEvent
from agentadapter.server.auth import Principal
from agentadapter.server.deps import get_principal, require
from agentadapter.server.errors import HTTPProblem, from_service
from agentadapter.server.gateway.errors import gateway_error
from agentadapter.server.gateway.models import check_model
from agentadapter.server.gateway.params import ParamPlan, param_plan
from agentadapter.server.state import AppState
from agentadapter.service.common import Caller
from agentadapter.service.compliance import check_call_consents
from agentadapter.service.errors import ServiceError

__all__ = [
    "MODEL_HEADER", "ROUTE_HEADER", "STREAM_HEADERS", "FrameWriter", "GatewayCall", "authenticate", "check_consents",
    "open_call",
]

logger = logging.getLogger("agentadapter.server")

ROUTE_HEADER = "x-agentadapter-route"
"""The model, alias or route the client named."""
MODEL_HEADER = "x-agentadapter-model"
"""The ``provider/model`` that answered (for a route: the target that did)."""
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_completions_write = require("completions", "write")


async def authenticate(request: HTTPRequest) -> Principal:
    """The caller, allowed to spend on completions; for routes that answer auth failures in their own format."""
    return await _completions_write(await get_principal(request))


class FrameWriter(Protocol):
    """A client format's stream: its opening frames, one event's frames, the closing frames, an error frame."""

    def start(self) -> list[bytes]: ...

    def event(self, event: StreamEvent) -> list[bytes]: ...

    def finish(self, response: Response) -> list[bytes]: ...

    def error(self, problem: HTTPProblem) -> bytes: ...


@dataclass(slots=True)
class GatewayCall:
    """One client call to ``model`` through the tenant's facade ``llm``."""

    llm: LLM
    model: str
    plan: ParamPlan

    @property
    def operator_model(self) -> bool:
        return self.model in self.llm.file_config.models

    def failure(self, exc: AgentAdapterError) -> HTTPProblem:
        return gateway_error(exc, self.model, operator_model=self.operator_model)

    def headers(self, answered_by: str) -> dict[str, str]:
        """The headers of an answer: the route asked for, the model that answered, the parameters dropped."""
        return {ROUTE_HEADER: self.model, MODEL_HEADER: answered_by, **self.plan.headers()}

    def answered_by_default(self) -> str:
        """The ``provider/model`` a stream answers from when its first event does not say (one target)."""
        return self.plan.targets[0][0] if self.plan.targets else self.model

    async def generate(self, request: Request) -> Response:
        """The whole answer; a 402 for credits (the API's own handler), else this format's errors as HTTPProblem."""
        try:
            return await self.llm.generate_request(self.model, request)
        except InsufficientCreditsError:
            raise
        except AgentAdapterError as exc:
            raise self.failure(exc) from exc

    async def open_stream(self, request: Request) -> tuple[StreamEvent | None, AsyncIterator[StreamEvent]]:
        """The stream's first event (None: it ended at once) and the rest; failures before it are raised."""
        events = self.llm.stream_request(self.model, request).__aiter__()
        try:
            first = await anext(events, None)
        except InsufficientCreditsError:
            raise
        except AgentAdapterError as exc:
            raise self.failure(exc) from exc
        return first, events

    def answered_by(self, first: StreamEvent | None) -> str:
        source = first.source if first is not None else None
        return source or self.answered_by_default()

    async def frames(self, first: StreamEvent | None, events: AsyncIterator[StreamEvent],
                     writer: FrameWriter) -> AsyncIterator[bytes]:
        """The stream as ``writer``'s frames; a failure after the status line is sent is an error frame."""
        for frame in writer.start():
            yield frame
        event = first
        try:
            while event is not None:
                if event.kind == "finish":
                    assert event.response is not None
                    for frame in writer.finish(event.response):
                        yield frame
                    return
                for frame in writer.event(event):
                    yield frame
                event = await anext(events, None)
        except AgentAdapterError as exc:
            yield writer.error(self.failure(exc))
            return
        except Exception as exc:  # the status line is sent: the client can only learn of it in the stream
            logger.exception("the gateway stream for %s failed", self.model)
            yield writer.error(HTTPProblem(500, f"the stream failed on the server: {type(exc).__name__}; it was "
                                                "logged - retry the request", type="api_error", code="internal_error"))
            return
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        yield writer.error(HTTPProblem(502, "the provider's stream ended without finishing the answer; retry the "
                                            "request", type="api_error", code="stream_incomplete"))


async def check_consents(state: AppState, principal: Principal) -> None:
    """A 403 ``consent_required`` (503 when the operator's consent service fails) for a caller whose user lacks a
    consent the tenant's policy requires; the answer is cached per user for ``auth_cache_s``."""
    try:
        await check_call_consents(state.db, Caller(principal), ttl_s=state.service.auth_cache_s)
    except ServiceError as exc:
        raise from_service(exc) from exc  # an HTTPProblem: each format's route writes it in its own shape


async def open_call(state: AppState, principal: Principal, model: str) -> GatewayCall:
    """The tenant's facade for ``model``, checked (404 for an unknown model, 403 for an operator-only one or for
    a user without a consent the tenant requires)."""
    await check_consents(state, principal)
    llm = await state.tenant_llms.get(principal.tenant_id)
    check_model(llm, model)
    return GatewayCall(llm, model, param_plan(llm, model))
