"""A loopback fake of Amazon Bedrock's runtime: ``/model/{id}/converse``, ``/converse-stream``
and ``/count-tokens``, plus the control plane's ``/foundation-models`` and ``/inference-profiles``.

:class:`BedrockFake` checks every request's SigV4 signature for real: it rebuilds the canonical request
from what arrived (the raw path, the headers the signature names, the body) and recomputes the
signature with botocore's ``SigV4Auth`` and the secret key it was given, so a wrong key, a body changed
after signing or a missing header fails as AWS would fail it (403 ``InvalidSignatureException``); a
bearer token (Bedrock API keys) is checked instead when one is set. It checks the Converse body the
way the service does where a mapping bug would show: alternating roles starting with a user turn,
every ``toolUse`` answered by a ``toolResult`` in the next user turn, a ``toolConfig`` beside any tool
block, non-empty text blocks. Answers come from a script (:meth:`BedrockFake.reply`) or echo the last
user text; streams are AWS's binary event stream (``application/vnd.amazon.eventstream``), framed by
:func:`encode_event` (prelude, headers, payload, CRC32s as the format specifies; the tests read them
back with botocore's decoder). Faults: AWS-shaped errors (:meth:`error`, with ``x-amzn-ErrorType``)
and an exception event in the middle of a stream (:meth:`exception_mid_stream`).
"""

from __future__ import annotations

import binascii
import hmac
import itertools
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .server import FakeServer, Recorded

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z-]+)/"
    r"aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and header lengths, CRC32), string headers, payload, CRC32."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return encode_event({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                        json.dumps(payload).encode())


def exception(exception_type: str, message: str) -> bytes:
    return encode_event({":exception-type": exception_type, ":content-type": "application/json",
                         ":message-type": "exception"}, json.dumps({"message": message}).encode())


@dataclass
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int] | None = None


@dataclass
class _Invalid(Exception):
    message: str
    status: int = 400
    error_type: str = "ValidationException"


@dataclass
class Signed:
    """What a verified signature said."""

    access_key: str
    region: str
    service: str
    signed_headers: list[str] = field(default_factory=list)


class BedrockFake(FakeServer):
    """The fake runtime. ``secret_key=None`` skips signature checks (``bearer`` then, if set, is required)."""

    def __init__(self, *, access_key: str = "AKIDFAKEEXAMPLE", secret_key: str | None = "fake-secret-key",
                 session_token: str | None = None, region: str = "us-east-1", bearer: str | None = None,
                 chunk_chars: int = 4) -> None:
        super().__init__()
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.region = region
        self.bearer = bearer
        self.chunk_chars = chunk_chars
        self.script: list[Reply] = []
        self.stream_exceptions: list[tuple[str, str, int]] = []
        self.signatures: list[Signed] = []
        self.models: list[str] = []
        self._ids = itertools.count(1)
        self.foundation_models: list[dict[str, Any]] = [
            {"modelId": "anthropic.claude-3-5-haiku-20241022-v1:0", "inferenceTypesSupported": ["ON_DEMAND"]},
            {"modelId": "amazon.nova-pro-v1:0", "inferenceTypesSupported": ["ON_DEMAND"]},
            {"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0", "inferenceTypesSupported": ["INFERENCE_PROFILE"]},
        ]
        self.inference_profiles: list[str] = [
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us.meta.llama3-3-70b-instruct-v1:0",
        ]
        self.token_count = 0
        """What CountTokens answers (0: a word count of the messages' texts)."""
        self.route("POST", "/model/", self._model, prefix=True)
        self.route("GET", "/foundation-models", self._foundation_models)
        self.route("GET", "/inference-profiles", self._inference_profiles)

    # --------------------------------------------------------------------------------- script

    def reply(self, text: str | None = None, *, tool_uses: list[dict[str, Any]] | None = None,
              reasoning: str | None = None, signature: str | None = None, usage: dict[str, int] | None = None,
              stop_reason: str | None = None) -> Reply:
        """Queue an answer: reasoning, text, then tool uses (``{"name", "input", "toolUseId"?}``)."""
        content: list[dict[str, Any]] = []
        if reasoning is not None:
            content.append({"reasoningContent": {"reasoningText": {"text": reasoning,
                                                                   "signature": signature or "sig-bedrock"}}})
        if text is not None:
            content.append({"text": text})
        for use in tool_uses or []:
            content.append({"toolUse": {"toolUseId": use.get("toolUseId") or f"tooluse_{next(self._ids):04d}",
                                        "name": use["name"], "input": use.get("input", {})}})
        if stop_reason is None:
            stop_reason = "tool_use" if any("toolUse" in b for b in content) else "end_turn"
        scripted = Reply(content, stop_reason, usage)
        self.script.append(scripted)
        return scripted

    def error(self, status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        """Answer the next request with an AWS JSON error (``x-amzn-ErrorType`` and ``{"message"}``)."""
        merged = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                  "x-amzn-RequestId": "req-fake-error", **(headers or {})}
        self.fail(status, {"message": message}, headers=merged)

    def exception_mid_stream(self, exception_type: str = "throttlingException",
                             message: str = "Too many requests, please wait before trying again.",
                             *, after_events: int = 2) -> None:
        self.stream_exceptions.append((exception_type, message, after_events))

    # -------------------------------------------------------------------------------- handlers

    async def _model(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        match = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream|count-tokens)", request.raw_path.split("?")[0])
        if match is None:
            return web.json_response({"message": f"Unknown operation {request.raw_path}"}, status=404,
                                     headers={"x-amzn-ErrorType": "UnknownOperationException"})
        try:
            self._check_auth(request, recorded)
            body = json.loads(recorded.body)
            if match.group(2) == "count-tokens":
                converse = (body.get("input") or {}).get("converse")
                if not isinstance(converse, dict):
                    raise _Invalid("input.converse is required")
                self._validate(converse)
                words = sum(len(str(b.get("text", "")).split()) for m in converse["messages"] for b in m["content"])
                return web.json_response({"inputTokens": self.token_count or words})
            self._validate(body)
        except _Invalid as invalid:
            return web.json_response({"message": invalid.message}, status=invalid.status,
                                     headers={"x-amzn-ErrorType": invalid.error_type})
        self.models.append(_unquote(match.group(1)))
        scripted = self.script.pop(0) if self.script else self._echo(body)
        request_id = f"req-fake-{next(self._ids):04d}"
        if match.group(2) == "converse":
            return web.json_response({
                "output": {"message": {"role": "assistant", "content": scripted.content}},
                "stopReason": scripted.stop_reason, "usage": self._usage(scripted),
                "metrics": {"latencyMs": 12},
            }, headers={"x-amzn-RequestId": request_id})
        return await self._stream(request, scripted, request_id)

    async def _foundation_models(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        try:
            self._check_auth(request, recorded)
        except _Invalid as invalid:
            return web.json_response({"message": invalid.message}, status=invalid.status,
                                     headers={"x-amzn-ErrorType": invalid.error_type})
        return web.json_response({"modelSummaries": self.foundation_models})

    async def _inference_profiles(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        try:
            self._check_auth(request, recorded)
        except _Invalid as invalid:
            return web.json_response({"message": invalid.message}, status=invalid.status,
                                     headers={"x-amzn-ErrorType": invalid.error_type})
        # Two pages, so a client must follow nextToken.
        start = int(request.query.get("nextToken") or 0)
        page = self.inference_profiles[start : start + 2]
        answer: dict[str, Any] = {"inferenceProfileSummaries": [{"inferenceProfileId": p} for p in page]}
        if start + 2 < len(self.inference_profiles):
            answer["nextToken"] = str(start + 2)
        return web.json_response(answer)

    async def _stream(self, request: web.Request, scripted: Reply, request_id: str) -> web.StreamResponse:
        frames = self._frames(scripted)
        fault = self.stream_exceptions.pop(0) if self.stream_exceptions else None
        if fault is not None:
            frames = [*frames[: fault[2]], exception(fault[0], fault[1])]
        response = web.StreamResponse(status=200, headers={
            "content-type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": request_id})
        await response.prepare(request)
        for frame in frames:
            # Split frames across writes, so the client's decoder meets partial messages.
            half = len(frame) // 2
            await response.write(frame[:half])
            await response.write(frame[half:])
        await response.write_eof()
        return response

    def _frames(self, scripted: Reply) -> list[bytes]:
        frames = [event("messageStart", {"role": "assistant"})]
        for index, block in enumerate(scripted.content):
            if "text" in block:
                for chunk in _chunks(block["text"], self.chunk_chars):
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": chunk}}))
            elif "toolUse" in block:
                use = block["toolUse"]
                frames.append(event("contentBlockStart", {"contentBlockIndex": index, "start": {
                    "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
                for chunk in _chunks(json.dumps(use["input"]), self.chunk_chars):
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": index,
                                                              "delta": {"toolUse": {"input": chunk}}}))
            elif "reasoningContent" in block:
                text = block["reasoningContent"]["reasoningText"]
                for chunk in _chunks(text["text"], self.chunk_chars):
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": index,
                                                              "delta": {"reasoningContent": {"text": chunk}}}))
                frames.append(event("contentBlockDelta", {"contentBlockIndex": index, "delta": {
                    "reasoningContent": {"signature": text["signature"]}}}))
            frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
        frames.append(event("messageStop", {"stopReason": scripted.stop_reason}))
        frames.append(event("metadata", {"usage": self._usage(scripted), "metrics": {"latencyMs": 12}}))
        return frames

    @staticmethod
    def _usage(scripted: Reply) -> dict[str, int]:
        usage = dict(scripted.usage or {"inputTokens": 10, "outputTokens": 5})
        usage.setdefault("totalTokens", usage.get("inputTokens", 0) + usage.get("outputTokens", 0)
                         + usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0))
        return usage

    # ------------------------------------------------------------------------------ checks

    def _check_auth(self, request: web.Request, recorded: Recorded) -> None:
        authorization = recorded.headers.get("authorization", "")
        if self.bearer is not None:
            if authorization != f"Bearer {self.bearer}":
                raise _Invalid("Invalid API Key format: Must start with pre-defined prefix", 403,
                               "UnrecognizedClientException")
            return
        if self.secret_key is None:
            return
        match = _AUTHORIZATION.match(authorization)
        if match is None:
            raise _Invalid("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'", 403,
                           "IncompleteSignatureException")
        if match["key"] != self.access_key:
            raise _Invalid("The security token included in the request is invalid.", 403,
                           "UnrecognizedClientException")
        amz_date = recorded.headers.get("x-amz-date", "")
        if not amz_date.startswith(match["date"]) or match["service"] != "bedrock" or match["region"] != self.region:
            raise _Invalid(f"Credential should be scoped to a valid region and service ({match['region']}/"
                           f"{match['service']})", 403, "InvalidSignatureException")
        if self.session_token is not None and recorded.headers.get("x-amz-security-token") != self.session_token:
            raise _Invalid("The security token included in the request is invalid.", 403,
                           "UnrecognizedClientException")
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            raise _Invalid("host and x-amz-date must be signed", 403, "InvalidSignatureException")
        missing = [name for name in signed if name not in recorded.headers]
        if missing:
            raise _Invalid(f"signed header(s) not sent: {missing}", 403, "InvalidSignatureException")
        # Recompute the signature from what arrived, as the service does.
        aws_request = AWSRequest(method=request.method, url=f"http://{recorded.headers['host']}{request.raw_path}",
                                 data=recorded.body, headers={name: recorded.headers[name] for name in signed})
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, self.session_token), "bedrock", self.region)
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if not hmac.compare_digest(expected, match["signature"]):
            raise _Invalid("The request signature we calculated does not match the signature you provided.", 403,
                           "InvalidSignatureException")
        self.signatures.append(Signed(match["key"], match["region"], match["service"], signed))

    @staticmethod
    def _validate(body: dict[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid("messages: at least one message is required")
        if messages[0]["role"] != "user":
            raise _Invalid("A conversation must start with a user message.")
        pending: set[str] = set()
        has_tool_blocks = False
        for index, message in enumerate(messages):
            if index and messages[index - 1]["role"] == message["role"]:
                raise _Invalid("A conversation must alternate between user and assistant roles.")
            answered = {b["toolResult"]["toolUseId"] for b in message["content"] if "toolResult" in b}
            if pending and answered != pending:
                missing = ", ".join(sorted(pending - answered))
                raise _Invalid(f"Expected toolResult blocks at messages.{index}.content for the following Ids: {missing}")
            pending = set()
            for block in message["content"]:
                if block.get("text") == "":
                    raise _Invalid("The text field in the ContentBlock object is blank.")
                if "toolUse" in block:
                    pending.add(block["toolUse"]["toolUseId"])
                has_tool_blocks = has_tool_blocks or "toolUse" in block or "toolResult" in block
        if has_tool_blocks and "toolConfig" not in body:
            raise _Invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
        for tool in (body.get("toolConfig") or {}).get("tools", []):
            if "json" not in tool["toolSpec"].get("inputSchema", {}):
                raise _Invalid("toolSpec.inputSchema.json is required")

    @staticmethod
    def _echo(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        texts = [b["text"] for b in last["content"] if "text" in b]
        return Reply([{"text": texts[-1] if texts else "ok"}], "end_turn")


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _unquote(segment: str) -> str:
    from urllib.parse import unquote

    return unquote(segment)
