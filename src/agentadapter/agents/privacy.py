"""The external-provider guardrail: personal data is replaced by placeholders before a call to a provider the
tenant marks external, and put back in the answer.

:class:`PseudonymizingBackend` wraps a provider's backend: each call gets its own
:class:`~agentadapter.compliance.Pseudonymizer`, which replaces what the detectors find in the request's
text (messages, tool results, tool call arguments, instructions) with ``<EMAIL_1>``-style placeholders
and restores them in the answer's text and tool calls - streamed text too (a placeholder split across
two deltas is held back until it is whole). The mapping never leaves the process, so the provider sees
only placeholders while the agent, its tools and the stored run see the real values (the stored run
follows the tenant's storage policy separately). :func:`pseudonymized` derives a facade whose named
providers are wrapped; the service builds each tenant's facade with it (:mod:`agentadapter.service.tenancy`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from agentadapter.compliance import BUILTIN_KINDS, Pseudonymizer
from agentadapter.llm.backends.base import Backend
from agentadapter.llm.messages import Message, Request, Response, StreamEvent, TextPart, ToolCallPart, ToolResultPart

if TYPE_CHECKING:
    from agentadapter.llm import catalog
    from agentadapter.llm.client import LLM

__all__ = ["PseudonymizingBackend", "pseudonymized"]

logger = logging.getLogger("agentadapter.agents.privacy")

_OPEN_PLACEHOLDER = re.compile(r"<[A-Z0-9_]{0,24}$")


class PseudonymizingBackend(Backend):
    """``inner`` with personal data replaced by placeholders on the way out and restored on the way back."""

    type_name = "pseudonymizing"

    def __init__(self, inner: Backend, *, detectors: Sequence[str] = BUILTIN_KINDS, region: str | None = None) -> None:
        super().__init__(inner.config, transport=inner.transport)
        self.inner = inner
        self.detectors = tuple(detectors)
        self.region = region
        self.header_listeners = inner.header_listeners
        self.setup_problem = inner.setup_problem

    def _new(self) -> Pseudonymizer:
        return Pseudonymizer(self.detectors, self.region)

    def _masked(self, request: Request, names: Pseudonymizer) -> Request:
        return dataclasses.replace(request, messages=[_mask_message(m, names) for m in request.messages])

    async def generate(self, request: Request) -> Response:
        names = self._new()
        response = await self.inner.generate(self._masked(request, names))
        return _restore_response(response, names)

    def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        return self._stream(request)

    async def _stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        names = self._new()
        held: dict[int, str] = {}  # per text block: the tail that may be the start of a placeholder
        async for event in self.inner.stream(self._masked(request, names)):
            if event.kind == "text":
                text = held.pop(event.index, "") + event.text
                cut = _OPEN_PLACEHOLDER.search(text)
                if cut is not None:
                    held[event.index], text = text[cut.start() :], text[: cut.start()]
                if text:
                    yield dataclasses.replace(event, text=names.restore(text))
                continue
            if event.kind == "finish":
                for index, rest in sorted(held.items()):
                    yield StreamEvent("text", text=names.restore(rest), index=index, source=event.source)
                held.clear()
                if event.response is not None:
                    event = dataclasses.replace(event, response=_restore_response(event.response, names))
            elif event.kind == "tool_call" and event.tool_call is not None:
                event = dataclasses.replace(event, tool_call=_restore_call(event.tool_call, names))
            elif event.kind == "tool_call_delta" and event.arguments_delta:
                # Partial JSON: restored where a placeholder is whole (the complete call follows, restored).
                event = dataclasses.replace(event, arguments_delta=names.restore(event.arguments_delta))
            yield event

    # Everything else is the inner backend's.
    def capabilities(self, model: str) -> catalog.Capabilities:
        return self.inner.capabilities(model)

    async def count_tokens(self, request: Request) -> int:
        return await self.inner.count_tokens(request)

    async def list_models(self) -> list[str]:
        return await self.inner.list_models()

    async def detect_capabilities(self, model: str) -> catalog.Capabilities:
        return await self.inner.detect_capabilities(model)

    def check_setup(self, model: str | None = None) -> None:
        self.inner.check_setup(model)

    async def aclose(self) -> None:
        return None  # the inner backend belongs to the facade it came from, which closes it

    def __getattr__(self, name: str) -> Any:
        # What only some backends have (embed limits, variants' api): the inner one's.
        return getattr(self.inner, name)


def _mask_value(value: Any, names: Pseudonymizer) -> Any:
    if isinstance(value, str):
        return names.mask(value)
    if isinstance(value, dict):
        return {k: _mask_value(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(v, names) for v in value]
    return value


def _mask_message(message: Message, names: Pseudonymizer) -> Message:
    parts: list[Any] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            part = dataclasses.replace(part, text=names.mask(part.text))
        elif isinstance(part, ToolResultPart):
            part = dataclasses.replace(part, content=names.mask(part.content))
        elif isinstance(part, ToolCallPart):
            part = dataclasses.replace(part, arguments=_mask_value(part.arguments, names))
        parts.append(part)  # images, files and reasoning go as they are (no text detector reads them)
    return dataclasses.replace(message, parts=parts)


def _restore_call(call: ToolCallPart, names: Pseudonymizer) -> ToolCallPart:
    return dataclasses.replace(call, arguments=names.restore_value(call.arguments))


def _restore_response(response: Response, names: Pseudonymizer) -> Response:
    if not names.replaced:
        return response
    parts: list[Any] = []
    for part in response.parts:
        if isinstance(part, TextPart):
            part = dataclasses.replace(part, text=names.restore(part.text))
        elif isinstance(part, ToolCallPart):
            part = _restore_call(part, names)
        parts.append(part)
    return dataclasses.replace(response, parts=parts)


def pseudonymized(
    llm: LLM, providers: Sequence[str], *, detectors: Sequence[str] = BUILTIN_KINDS, region: str | None = None
) -> LLM:
    """A facade like ``llm`` whose calls to ``providers`` carry placeholders instead of personal data."""
    wrapped: dict[str, Backend] = {}
    for provider in providers:
        try:
            inner = llm.resolver.backend(provider)
        except Exception:  # a provider this server does not know: there is nothing to call, nothing to mask
            logger.debug("provider %r is not known here; nothing to wrap", provider)
            continue
        if not isinstance(inner, PseudonymizingBackend):
            wrapped[provider] = PseudonymizingBackend(inner, detectors=detectors, region=region)
    return llm.derive(backends=wrapped) if wrapped else llm
