"""Our neutral answer -> OpenAI's ``chat.completion`` JSON, our stream events -> ``chat.completion.chunk`` SSE,
and the compact JSON answer every gateway endpoint sends.

Finish reasons, usage and tool-call arguments use the tables and helpers of
:mod:`agentadapter.llm.backends.openai_chat_mapping` (the same ones that read OpenAI's answers), so
the two directions cannot drift apart. A stream is written as OpenAI writes it: a first chunk with
the role, content deltas, tool-call deltas keyed by ``index`` (id and name on the first delta of a
call), a chunk with the finish reason, a ``choices: []`` chunk with the usage when the client asked
for it, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi.responses import Response as HTTPResponse

from agentadapter.llm.backends.openai_chat_mapping import WIRE_FINISH_REASONS, arguments_json, usage_to_wire
from agentadapter.llm.messages import Response, StreamEvent
from agentadapter.server.errors import HTTPProblem, error_body

__all__ = ["DONE", "ChunkWriter", "completion_body", "json_response", "response_model", "sse_data"]

DONE = b"data: [DONE]\n\n"


def json_response(payload: dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> HTTPResponse:
    """A compact JSON answer, as OpenAI's API sends them."""
    return HTTPResponse(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(), status_code=status,
                        media_type="application/json", headers=headers)


def completion_id(response_id: str) -> str:
    return response_id if response_id.startswith("chatcmpl") else f"chatcmpl-{response_id or uuid.uuid4().hex}"


def response_model(response: Response) -> str:
    """The ``provider/model`` that answered (for a route: the target that did)."""
    return f"{response.provider}/{response.model}" if response.provider else response.model


def completion_body(response: Response, *, legacy_functions: bool = False) -> dict[str, Any]:
    """A complete answer as a ``chat.completion`` object (``legacy_functions``: a call as ``function_call``)."""
    text = response.text
    refusal = (response.provider_details or {}).get("refusal")
    if isinstance(refusal, str) and refusal and text.endswith(refusal):
        text = text[: len(text) - len(refusal)]  # the backend keeps a refusal in the text too
    else:
        refusal = None
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": refusal}
    calls = response.tool_calls
    finish_reason = WIRE_FINISH_REASONS[response.finish_reason]
    if calls and legacy_functions:
        # The older API has one call per answer; a model that asked for several gets its first sent.
        message["function_call"] = {"name": calls[0].name, "arguments": arguments_json(calls[0].arguments)}
        finish_reason = "function_call" if finish_reason == "tool_calls" else finish_reason
    elif calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": arguments_json(call.arguments)}}
            for call in calls
        ]
    elif not text and refusal is None:
        message["content"] = ""
    return {
        "id": completion_id(response.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response_model(response),
        "choices": [{"index": 0, "message": message, "logprobs": (response.provider_details or {}).get("logprobs"),
                     "finish_reason": finish_reason}],
        "usage": usage_to_wire(response.usage),
        "system_fingerprint": None,
    }


def sse_data(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class ChunkWriter:
    """Turns one stream's events into ``chat.completion.chunk`` frames."""

    def __init__(self, model: str, *, include_usage: bool, legacy_functions: bool = False) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        """The ``provider/model`` that answers (for a route: the target whose stream this is)."""
        self.include_usage = include_usage
        self.legacy_functions = legacy_functions
        self._started = False
        # Our tool-call events carry the part's index in the answer; OpenAI numbers calls from 0.
        self._call_index: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse_data({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                         "model": self.model, "system_fingerprint": None,
                         "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]})

    def start(self) -> list[bytes]:
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def event(self, event: StreamEvent) -> list[bytes]:
        frame = self._frame(event)
        return [frame] if frame is not None else []

    def error(self, problem: HTTPProblem) -> bytes:
        """A failure once the stream started: one ``data: {"error": ...}`` event (the stream then ends)."""
        return sse_data(error_body(problem.type, problem.message, code=problem.code, param=problem.param,
                                   details=problem.details))

    def _frame(self, event: StreamEvent) -> bytes | None:
        """The frame for one event, or None for events OpenAI's stream has no chunk for."""
        kind = event.kind
        if kind == "text":
            return self._chunk({"content": event.text}) if event.text else None
        if kind == "tool_call_delta":
            index = self._call_index.get(event.index)
            call: dict[str, Any] = {}
            if index is None:
                index = self._call_index[event.index] = len(self._call_index)
                call = {"index": index, "id": event.call_id or f"call_{index}", "type": "function",
                        "function": {"name": event.name or "", "arguments": event.arguments_delta}}
            elif event.arguments_delta:
                call = {"index": index, "function": {"arguments": event.arguments_delta}}
            return self._calls_chunk(call) if call else None
        if kind == "tool_call":
            assert event.tool_call is not None
            if event.index in self._call_index:
                return None  # its deltas were sent already
            index = self._call_index[event.index] = len(self._call_index)
            whole = event.tool_call
            return self._calls_chunk({"index": index, "id": whole.id, "type": "function", "function": {
                "name": whole.name, "arguments": arguments_json(whole.arguments)}})
        return None  # reasoning (no chat-completions field), usage and finish (see finish())

    def _calls_chunk(self, call: dict[str, Any]) -> bytes | None:
        if not self.legacy_functions:
            return self._chunk({"tool_calls": [call]})
        if call["index"] != 0:
            return None  # the older API streams one call; the non-streamed answer keeps the first too
        return self._chunk({"function_call": call["function"]})

    def finish(self, response: Response) -> list[bytes]:
        reason = WIRE_FINISH_REASONS[response.finish_reason]
        if self.legacy_functions and reason == "tool_calls":
            reason = "function_call"
        frames = [self._chunk({}, reason)]
        if self.include_usage:
            frames.append(sse_data({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                    "model": self.model, "system_fingerprint": None, "choices": [],
                                    "usage": usage_to_wire(response.usage)}))
        frames.append(DONE)
        return frames

