"""A loopback fake of the Gemini API (v1beta): generateContent, streamGenerateContent, countTokens, models.

:class:`GeminiFake` answers from a script (:meth:`GeminiFake.reply`), or echoes the last user text
when there is none. It validates what the real API refuses, with the real API's error body and
status: a wrong or missing key, a role other than ``user``/``model``, empty turns, a
``functionResponse`` without a name, unknown request or ``Schema`` fields (``additionalProperties``,
``$ref``, ...), lower-case or unknown types. Streams are ``data: {...}`` events separated by CRLF
CRLF, with ``usageMetadata`` (cumulative) on every chunk and function calls whole in one chunk, as
Gemini sends them. Faults: :meth:`GeminiFake.fail_with` (an HTTP status with Gemini's error body),
and per reply a mid-stream error chunk, a stream without a finish reason, or a dropped connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .embedding import fake_vector
from .server import FakeServer, Recorded, send_sse

API_PREFIX = "/v1beta/"

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_REQUEST_FIELDS = frozenset({
    "model", "contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
    "safetySettings", "cachedContent", "labels",
})
_GENERATION_FIELDS = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
    "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
    "thinkingConfig", "mediaResolution",
})
_THINKING_FIELDS = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
_PART_DATA = frozenset({
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult",
})
_PART_EXTRA = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata"})
_SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
    "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})
_SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_MODES = frozenset({"AUTO", "ANY", "NONE", "VALIDATED"})


def gemini_error(status: int, message: str, status_name: str | None = None, **extra: Any) -> dict[str, Any]:
    """Gemini's error body: ``{"error": {"code", "message", "status", ...}}``."""
    name = status_name or _STATUS_NAMES.get(status, "UNKNOWN")
    return {"error": {"code": status, "message": message, "status": name, **extra}}


class GeminiInvalid(Exception):
    """A request the real API would refuse; becomes an HTTP error with Gemini's body."""

    def __init__(self, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = gemini_error(status, message, **extra)


@dataclass
class Reply:
    """One scripted answer (see :meth:`GeminiFake.reply`)."""

    text: str | None = None
    function_calls: list[dict[str, Any]] = field(default_factory=list)
    thought: str | None = None
    thought_signature: str | None = None
    text_signature: str | None = None
    usage: dict[str, int] | None = None
    finish_reason: str | None = "STOP"
    block_reason: str | None = None
    response_id: str | None = None
    model_version: str | None = None
    parts: list[dict[str, Any]] | None = None
    stream_error: dict[str, Any] | None = None
    error_after: int = 1
    no_finish: bool = False
    drop_after: int | None = None


class GeminiFake(FakeServer):
    """The Gemini API on loopback. ``api_key=None`` accepts any caller."""

    def __init__(self, *, api_key: str | None = "test-key", models: list[str] | None = None,
                 page_size: int = 2, chunk_chars: int = 6) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = models if models is not None else [
            "gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "text-embedding-004",
        ]
        self.embedding_dimensions = 8
        self.page_size = page_size
        self.chunk_chars = chunk_chars
        self.script: list[Reply] = []
        self._served = 0
        self.route("GET", API_PREFIX + "models", self._list_models)
        self.route("GET", API_PREFIX + "models/", self._get_model, prefix=True)
        self.route("POST", API_PREFIX + "models/", self._post, prefix=True)

    # ------------------------------------------------------------------------------- scripting

    def reply(self, text: str | None = None, **kwargs: Any) -> GeminiFake:
        """Queue the next answer: ``text``, ``function_calls=[{"name", "args", "id"?, "thought_signature"?}]``,
        ``thought`` (+ ``thought_signature``), ``text_signature``, ``usage`` (a usageMetadata dict),
        ``finish_reason``, ``block_reason`` (no candidates), ``response_id``, ``model_version``, raw
        ``parts``; stream faults: ``stream_error`` (an error body sent after ``error_after`` chunks),
        ``no_finish``, ``drop_after``."""
        self.script.append(Reply(text=text, **kwargs))
        return self

    def fail_with(self, status: int, message: str, status_name: str | None = None, *, times: int = 1,
                  headers: dict[str, str] | None = None, **extra: Any) -> None:
        """The next ``times`` requests get this status with Gemini's error body."""
        self.fail(status, gemini_error(status, message, status_name, **extra), times=times, headers=headers or {})

    @property
    def last_body(self) -> Any:
        return self.requests[-1].json

    # --------------------------------------------------------------------------------- routing

    def _check_key(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("x-goog-api-key")
        if given is None:
            raise GeminiInvalid(
                "Method doesn't allow unregistered callers (callers without established identity). Please use "
                "API Key or other form of API consumer identity to call this API.", 403,
            )
        if given != self.api_key:
            raise GeminiInvalid(
                "API key not valid. Please pass a valid API key.", 400,
                details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                          "domain": "googleapis.com"}],
            )

    def _model(self, name: str, method: str = "generateContent") -> str:
        model = name.removeprefix("models/")
        if model not in self.models:
            raise GeminiInvalid(
                f"models/{model} is not found for API version v1beta, or is not supported for {method}. Call "
                "ListModels to see the list of available models and their supported methods.", 404,
            )
        return model

    async def _post(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        resource, _, method = request.path[len(API_PREFIX):].rpartition(":")
        try:
            self._check_key(request)
            model = self._model(resource, method)
            try:
                body = json.loads(recorded.body)
            except ValueError as exc:
                raise GeminiInvalid(f"Invalid JSON payload received. {exc}") from exc
            if method == "countTokens":
                return web.json_response(self._count_tokens(body))
            if method == "batchEmbedContents":
                return web.json_response(self._batch_embed(model, body))
            if method not in ("generateContent", "streamGenerateContent"):
                raise GeminiInvalid(f"no method {method}", 404)
            validate_request(body)
            reply = self._next_reply(body)
        except GeminiInvalid as exc:
            return web.json_response(exc.body, status=exc.status)
        if method == "generateContent":
            return web.json_response(self._full_response(reply, model, body))
        if request.query.get("alt") != "sse":
            return web.json_response(gemini_error(400, "this fake streams only with ?alt=sse"), status=400)
        frames = [f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in self._chunks(reply, model, body)]
        if reply.stream_error is not None:
            frames = [*frames[: reply.error_after], f"data: {json.dumps(reply.stream_error)}\r\n\r\n"]
        return await send_sse(request, frames, drop_after=reply.drop_after)

    _TASK_TYPES = frozenset({"RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
                             "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"})

    def _batch_embed(self, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``batchEmbedContents`` as Gemini answers it: ``{"embeddings": [{"values": [...]}]}``, no usage."""
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise GeminiInvalid("* BatchEmbedContentsRequest.requests: contents is not specified")
        if len(requests) > 100:
            raise GeminiInvalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
        embeddings = []
        for index, item in enumerate(requests):
            if item.get("model") != f"models/{model}":
                raise GeminiInvalid(f"requests[{index}].model: must be the batch's model (models/{model})")
            task = item.get("taskType")
            if task is not None and task not in self._TASK_TYPES:
                raise GeminiInvalid(f"Invalid value at 'requests[{index}].task_type' ({task})")
            parts = (item.get("content") or {}).get("parts") or []
            text = "".join(part.get("text", "") for part in parts)
            if not text:
                raise GeminiInvalid(f"* BatchEmbedContentsRequest.requests[{index}].content: contents is not specified")
            dimensions = item.get("outputDimensionality") or self.embedding_dimensions
            embeddings.append({"values": fake_vector(f"{model}:{task}", text, dimensions)})
        return {"embeddings": embeddings}

    async def _list_models(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        try:
            self._check_key(request)
        except GeminiInvalid as exc:
            return web.json_response(exc.body, status=exc.status)
        start = int(request.query.get("pageToken") or 0)
        size = min(int(request.query.get("pageSize") or 50), self.page_size)
        page = self.models[start:start + size]
        body: dict[str, Any] = {"models": [self._entry(m) for m in page]}
        if start + size < len(self.models):
            body["nextPageToken"] = str(start + size)
        return web.json_response(body)

    async def _get_model(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        try:
            self._check_key(request)
            model = self._model(request.path[len(API_PREFIX):], "get")
        except GeminiInvalid as exc:
            return web.json_response(exc.body, status=exc.status)
        return web.json_response(self._entry(model))

    @staticmethod
    def _entry(model: str) -> dict[str, Any]:
        embedding = "embedding" in model
        return {
            "name": f"models/{model}",
            "displayName": model.replace("-", " ").title(),
            "inputTokenLimit": 2048 if embedding else 1048576,
            "outputTokenLimit": 1 if embedding else 65536,
            "supportedGenerationMethods": ["embedContent"] if embedding else
            ["generateContent", "countTokens"],
            "thinking": model.startswith("gemini-2.5"),
        }

    # ------------------------------------------------------------------------------- answering

    def _next_reply(self, body: Mapping[str, Any]) -> Reply:
        self._served += 1
        if self.script:
            return self.script.pop(0)
        return Reply(text=last_user_text(body))

    @staticmethod
    def _count_tokens(body: Mapping[str, Any]) -> dict[str, Any]:
        if ("contents" in body) == ("generateContentRequest" in body):
            raise GeminiInvalid("countTokens takes either contents or generateContentRequest, not both")
        inner = body.get("generateContentRequest") or {"contents": body["contents"]}
        if "generateContentRequest" in body and not str(inner.get("model", "")).startswith("models/"):
            raise GeminiInvalid("GenerateContentRequest.model: unexpected model name format")
        validate_request(inner)
        return {"totalTokens": count_tokens(inner)}

    def _usage(self, reply: Reply, body: Mapping[str, Any], fraction: float = 1.0) -> dict[str, int]:
        if reply.usage is not None:
            usage = dict(reply.usage)
            if fraction < 1.0 and "candidatesTokenCount" in usage:
                usage["candidatesTokenCount"] = int(usage["candidatesTokenCount"] * fraction)
            return usage
        prompt = count_tokens(body)
        candidates = int((len((reply.text or "").split()) + 3 * len(reply.function_calls)) * fraction)
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": candidates}
        if reply.thought:
            usage["thoughtsTokenCount"] = len(reply.thought.split())
        usage["totalTokenCount"] = sum(usage.values())
        return usage

    def _response_id(self, reply: Reply) -> str:
        return reply.response_id or f"resp-{self._served}"

    @staticmethod
    def _call_parts(reply: Reply) -> list[dict[str, Any]]:
        parts = []
        for call in reply.function_calls:
            wire: dict[str, Any] = {"name": call["name"], "args": call.get("args", {})}
            if call.get("id"):
                wire["id"] = call["id"]
            part: dict[str, Any] = {"functionCall": wire}
            if call.get("thought_signature"):
                part["thoughtSignature"] = call["thought_signature"]
            parts.append(part)
        return parts

    def _full_response(self, reply: Reply, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = {
            "usageMetadata": self._usage(reply, body),
            "modelVersion": reply.model_version or model,
            "responseId": self._response_id(reply),
        }
        if reply.block_reason:
            response["promptFeedback"] = {"blockReason": reply.block_reason}
            return response
        parts = reply.parts
        if parts is None:
            parts = []
            if reply.thought:
                thought: dict[str, Any] = {"text": reply.thought, "thought": True}
                if reply.thought_signature:
                    thought["thoughtSignature"] = reply.thought_signature
                parts.append(thought)
            if reply.text:
                text_part: dict[str, Any] = {"text": reply.text}
                if reply.text_signature:
                    text_part["thoughtSignature"] = reply.text_signature
                parts.append(text_part)
            parts.extend(self._call_parts(reply))
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if reply.finish_reason:
            candidate["finishReason"] = reply.finish_reason
        response["candidates"] = [candidate]
        return response

    def _chunks(self, reply: Reply, model: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The same answer as a stream: thought, then text in small pieces, then calls whole."""
        if reply.block_reason or reply.parts is not None:
            return [self._full_response(reply, model, body)]
        pieces: list[list[dict[str, Any]]] = []
        if reply.thought:
            half = len(reply.thought) // 2
            pieces.append([{"text": reply.thought[:half], "thought": True}])
            last: dict[str, Any] = {"text": reply.thought[half:], "thought": True}
            if reply.thought_signature:
                last["thoughtSignature"] = reply.thought_signature
            pieces.append([last])
        text = reply.text or ""
        for start in range(0, len(text), self.chunk_chars):
            pieces.append([{"text": text[start:start + self.chunk_chars]}])
        if reply.text_signature:
            pieces.append([{"text": "", "thoughtSignature": reply.text_signature}])  # as real streams do
        if reply.function_calls:
            pieces.append(self._call_parts(reply))
        if not pieces:
            pieces.append([{"text": ""}])
        chunks = []
        for number, parts in enumerate(pieces, start=1):
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            if number == len(pieces) and reply.finish_reason and not reply.no_finish:
                candidate["finishReason"] = reply.finish_reason
            chunks.append({
                "candidates": [candidate],
                "usageMetadata": self._usage(reply, body, number / len(pieces)),
                "modelVersion": reply.model_version or model,
                "responseId": self._response_id(reply),
            })
        return chunks


# ----------------------------------------------------------------------------------- validation


def last_user_text(body: Mapping[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            texts = [p["text"] for p in content.get("parts", []) if "text" in p]
            if texts:
                return " ".join(texts)
    return ""


def count_tokens(body: Mapping[str, Any]) -> int:
    """The fake's tokenizer: one token per whitespace-separated word of every text, plus one per part."""
    total = 0
    system = body.get("systemInstruction") or {}
    for content in [system, *(body.get("contents") or [])]:
        for part in content.get("parts", []):
            total += 1 + len(str(part.get("text", "")).split())
    for tool in body.get("tools") or []:
        total += 5 * len(tool.get("functionDeclarations", []))
    return total


def validate_request(body: Mapping[str, Any]) -> None:
    """Refuse what the real API refuses (the parts of it our backend could get wrong)."""
    unknown = set(body) - _REQUEST_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise GeminiInvalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GeminiInvalid("* GenerateContentRequest.contents: contents is not specified")
    for index, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            raise GeminiInvalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise GeminiInvalid(f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.")
        for number, part in enumerate(parts):
            _validate_part(part, f"contents[{index}].parts[{number}]")
    system = body.get("systemInstruction")
    if system is not None:
        for part in system.get("parts", []):
            if set(part) != {"text"}:
                raise GeminiInvalid("systemInstruction parts must be text")
    for tool in body.get("tools") or []:
        for number, declaration in enumerate(tool.get("functionDeclarations", [])):
            if not declaration.get("name"):
                raise GeminiInvalid(f"* functionDeclarations[{number}].name: Name cannot be empty.")
            if "parameters" in declaration:
                validate_schema(declaration["parameters"], f"functionDeclarations[{number}].parameters")
    config = body.get("toolConfig")
    if config is not None:
        mode = config.get("functionCallingConfig", {}).get("mode")
        if mode not in _MODES:
            raise GeminiInvalid(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode!r})")
    generation = body.get("generationConfig") or {}
    unknown = set(generation) - _GENERATION_FIELDS
    if unknown:
        raise GeminiInvalid(f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at '
                            "'generation_config': Cannot find field.")
    thinking = generation.get("thinkingConfig") or {}
    if set(thinking) - _THINKING_FIELDS:
        raise GeminiInvalid("Unknown name in thinking_config")
    if "responseSchema" in generation:
        if generation.get("responseMimeType") != "application/json":
            raise GeminiInvalid("responseSchema needs responseMimeType application/json")
        validate_schema(generation["responseSchema"], "generation_config.response_schema")


def _validate_part(part: Mapping[str, Any], where: str) -> None:
    data = set(part) & _PART_DATA
    if len(data) != 1 or set(part) - _PART_DATA - _PART_EXTRA:
        raise GeminiInvalid(f"* GenerateContentRequest.{where}: a part needs exactly one data field, got "
                            f"{sorted(part)}")
    if "text" in data and not part["text"] and "thoughtSignature" not in part:
        raise GeminiInvalid(f"* GenerateContentRequest.{where}.text: Unable to submit request because it has "
                            "an empty text parameter.")
    if "functionResponse" in data:
        response = part["functionResponse"]
        if not response.get("name"):
            raise GeminiInvalid(f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty.")
        if not isinstance(response.get("response"), dict):
            raise GeminiInvalid(f"* GenerateContentRequest.{where}.function_response.response: must be an object")
    if "functionCall" in data and not part["functionCall"].get("name"):
        raise GeminiInvalid(f"* GenerateContentRequest.{where}.function_call.name: Name cannot be empty.")
    if "inlineData" in data:
        inline = part["inlineData"]
        if not inline.get("mimeType") or not inline.get("data"):
            raise GeminiInvalid(f"* GenerateContentRequest.{where}.inline_data: mimeType and data are required")
    if "fileData" in data and not part["fileData"].get("fileUri"):
        raise GeminiInvalid(f"* GenerateContentRequest.{where}.file_data.file_uri: required")


def validate_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise GeminiInvalid(f"{where}: a Schema must be an object")
    unknown = set(schema) - _SCHEMA_FIELDS
    if unknown:
        raise GeminiInvalid(f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'{where}\': '
                            "Cannot find field.")
    kind = schema.get("type")
    if kind is not None and kind not in _SCHEMA_TYPES:
        raise GeminiInvalid(f"Invalid value at '{where}.type' ({kind!r})")
    if kind == "OBJECT" and "properties" in schema and not schema["properties"]:
        raise GeminiInvalid(f"* {where}.properties: should be non-empty for OBJECT type")
    if "enum" in schema and kind != "STRING":
        raise GeminiInvalid(f"* {where}.enum: only allowed for STRING type")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            raise GeminiInvalid(f"* {where}.required[{name}]: property is not defined")
    for name, sub in (schema.get("properties") or {}).items():
        validate_schema(sub, f"{where}.properties[{name}]")
    if "items" in schema:
        validate_schema(schema["items"], f"{where}.items")
    for number, option in enumerate(schema.get("anyOf") or []):
        validate_schema(option, f"{where}.any_of[{number}]")
