"""The providers' batch APIs behind one small interface: OpenAI's Batch API and Anthropic's Message Batches.

:class:`BatchAPI` is what :mod:`agentadapter.llm.batch` drives: :meth:`~BatchAPI.submit` a list of
neutral requests (each under a ``custom_id``), read the job's :meth:`~BatchAPI.status`, fetch its
:meth:`~BatchAPI.results` once it has ended (each item a neutral ``Response`` or the error that item
met), :meth:`~BatchAPI.cancel` it. The request bodies and the answers go through the very mappings
the backends use for single calls (:mod:`.backends.openai_chat_mapping`, :mod:`.backends.anthropic_mapping`),
and requests go through the backend's own transport, key and error translation.

OpenAI (:class:`OpenAIBatchAPI`, any OpenAI-style preset whose server offers ``/batches``: OpenAI,
Groq, Together...): the requests are a JSONL file uploaded to ``POST /files`` (``purpose=batch``),
``POST /batches`` starts the job over ``/v1/chat/completions``, ``GET /batches/{id}`` reports it, and
the answers are the JSONL files ``output_file_id`` (successes) and ``error_file_id`` (failures) name.
Anthropic (:class:`AnthropicBatchAPI`): ``POST /v1/messages/batches`` with the requests inline,
``GET /v1/messages/batches/{id}``, and its JSONL results at ``/v1/messages/batches/{id}/results``
(the documented path, so the key is only ever sent to the configured host).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentadapter.llm.backends.anthropic_mapping import (
    ANTHROPIC_VERSION,
    WireRequest,
    build_request,
    parse_response,
)
from agentadapter.llm.backends.base import Backend
from agentadapter.llm.backends.openai_chat_mapping import WireSettings, request_body, response_from_body
from agentadapter.llm.backends.openai_common import auth_headers, chat_preset, is_reasoning_model
from agentadapter.llm.errors import (
    APIError,
    CapabilityError,
    InvalidResponseError,
    error_from_event,
    error_from_response,
)
from agentadapter.llm.messages import Request, Response
from agentadapter.llm.transport import HTTPRequest

__all__ = ["AnthropicBatchAPI", "BatchAPI", "BatchState", "BatchStatus", "OpenAIBatchAPI", "batch_api_for"]

BatchStatus = Literal["validating", "in_progress", "finalizing", "completed", "failed", "expired",
                      "cancelling", "cancelled"]
"""A batch job's state, in OpenAI's words (Anthropic's ``in_progress`` / ``canceling`` / ``ended`` map onto them)."""

ENDED: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})
"""States after which the job changes no more."""


@dataclass(slots=True)
class BatchState:
    """What the provider said of a job when last asked."""

    status: BatchStatus
    total: int
    succeeded: int = 0
    failed: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    """The provider's own job object, as last read."""

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def ended(self) -> bool:
        return self.status in ENDED


Outcome = Response | APIError


class BatchAPI(ABC):
    """One provider's batch endpoints, bound to a backend (its URL, key and transport)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @abstractmethod
    async def submit(self, model: str, items: Sequence[tuple[str, Request]]) -> tuple[str, Any]:
        """Start a job for ``(custom_id, request)`` pairs; returns its id and what reading answers needs."""

    @abstractmethod
    async def status(self, job_id: str, total: int) -> BatchState:
        """The job's current state."""

    @abstractmethod
    async def results(self, state: BatchState, model: str, context: Any) -> dict[str, Outcome]:
        """Every item's outcome by custom id (an item missing here was never run)."""

    @abstractmethod
    async def cancel(self, job_id: str) -> None:
        """Ask the provider to stop the job (items already done keep their answers)."""

    # ---------------------------------------------------------------------------------- plumbing

    def _request(self, method: str, url: str, *, body: Any = None, content: bytes | None = None,
                 headers: Mapping[str, str] | None = None, model: str | None = None) -> HTTPRequest:
        http_request = self.backend.http_request(method, url, None, body=body, headers=headers)
        http_request.model = model
        if content is not None:
            http_request.content = content
        return http_request

    async def _object(self, http_request: HTTPRequest, what: str) -> Mapping[str, Any]:
        return await self.backend.send_for_object(http_request, what)

    async def _jsonl(self, http_request: HTTPRequest) -> list[Mapping[str, Any]]:
        response = await self.backend.transport.send(http_request)
        if response.status >= 400:
            raise error_from_response(response.status, _decoded(response.content), response.headers,
                                      provider=self.backend.name, model=http_request.model)
        lines: list[Mapping[str, Any]] = []
        for number, line in enumerate(response.content.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise InvalidResponseError(
                    f"{self.backend.name} sent batch results whose line {number} is not JSON: {line[:200]!r}",
                    provider=self.backend.name, model=http_request.model,
                ) from exc
            if isinstance(entry, Mapping):
                lines.append(entry)
        return lines


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------------- OpenAI

_OPENAI_STATUS: dict[str, BatchStatus] = {
    "validating": "validating", "in_progress": "in_progress", "finalizing": "finalizing",
    "completed": "completed", "failed": "failed", "expired": "expired", "cancelling": "cancelling",
    "cancelled": "cancelled",
}


class OpenAIBatchAPI(BatchAPI):
    """OpenAI's Batch API (``/files`` + ``/batches``) over chat completions."""

    endpoint = "/v1/chat/completions"
    completion_window = "24h"

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        preset = chat_preset(backend.config.type)
        if preset.name == "azure":
            raise CapabilityError(
                f"{backend.name}: Azure OpenAI batches run on Global-Batch deployments with their own endpoint; "
                "they are not supported here, use an openai backend"
            )
        self.preset = preset
        self.base_url = (backend.config.base_url or preset.base_url or "").rstrip("/")
        self.headers = {**auth_headers(preset, backend.config.api_key), **backend.config.headers}

    def _url(self, path: str) -> str:
        self.backend.check_setup()
        return f"{self.base_url}/{path}"

    async def submit(self, model: str, items: Sequence[tuple[str, Request]]) -> tuple[str, Any]:
        settings = WireSettings(reasoning_model=self.preset.reasoning_model_settings
                                and is_reasoning_model(self.backend, model), openai_extras=False)
        lines = [
            json.dumps({"custom_id": custom_id, "method": "POST", "url": self.endpoint,
                        "body": request_body(request, settings, stream=False)}, ensure_ascii=False)
            for custom_id, request in items
        ]
        content, content_type = _multipart(("\n".join(lines) + "\n").encode("utf-8"))
        upload = self._request("POST", self._url("files"), content=content,
                               headers={**self.headers, "content-type": content_type}, model=model)
        uploaded = await self._object(upload, "an uploaded file object")
        file_id = str(uploaded.get("id") or "")
        if not file_id:
            raise InvalidResponseError(f"{self.backend.name} answered the batch file upload without a file id: "
                                       f"{str(uploaded)[:200]}", provider=self.backend.name, model=model)
        create = self._request("POST", self._url("batches"), body={
            "input_file_id": file_id, "endpoint": self.endpoint, "completion_window": self.completion_window,
        }, headers=self.headers, model=model)
        job = await self._object(create, "a batch object")
        return str(job["id"]), None

    async def status(self, job_id: str, total: int) -> BatchState:
        job = await self._object(self._request("GET", self._url(f"batches/{job_id}"), headers=self.headers),
                                 "a batch object")
        counts = job.get("request_counts") or {}
        status = _OPENAI_STATUS.get(str(job.get("status")), "in_progress")
        return BatchState(status, int(counts.get("total") or total), int(counts.get("completed") or 0),
                          int(counts.get("failed") or 0), dict(job))

    async def results(self, state: BatchState, model: str, context: Any) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        for key in ("output_file_id", "error_file_id"):
            file_id = state.detail.get(key)
            if not file_id:
                continue
            url = self._url(f"files/{file_id}/content")
            for line in await self._jsonl(self._request("GET", url, headers=self.headers, model=model)):
                custom_id = str(line.get("custom_id", ""))
                outcomes[custom_id] = self._outcome(line, model)
        return outcomes

    def _outcome(self, line: Mapping[str, Any], model: str) -> Outcome:
        name = self.backend.name
        response = line.get("response") or {}
        error = line.get("error")
        status = int(response.get("status_code") or 0) if isinstance(response, Mapping) else 0
        body = response.get("body") if isinstance(response, Mapping) else None
        if error or status >= 400 or not isinstance(body, Mapping):
            if error and not status:
                return error_from_event({"error": error}, provider=name, model=model)
            return error_from_response(status or 500, body if body is not None else error, {}, provider=name,
                                       model=model)
        answer = response_from_body(body, name, model)
        answer.provider_details = {**(answer.provider_details or {}), "batch_request_id": response.get("request_id")}
        return answer

    async def cancel(self, job_id: str) -> None:
        await self._object(self._request("POST", self._url(f"batches/{job_id}/cancel"), body={},
                                         headers=self.headers), "a batch object")


def _multipart(jsonl: bytes) -> tuple[bytes, str]:
    """``purpose=batch`` and the JSONL file as multipart/form-data (encoded by httpx, which we depend on)."""
    import httpx

    encoder = httpx.Request("POST", "http://localhost/files", data={"purpose": "batch"},
                            files={"file": ("batch.jsonl", jsonl, "application/jsonl")})
    return encoder.read(), encoder.headers["content-type"]


# ---------------------------------------------------------------------------------------- Anthropic

_ANTHROPIC_STATUS: dict[str, BatchStatus] = {"in_progress": "in_progress", "canceling": "cancelling",
                                              "ended": "completed"}


class AnthropicBatchAPI(BatchAPI):
    """Anthropic's Message Batches API."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        base = (backend.config.base_url or "https://api.anthropic.com").rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        self.headers = {"anthropic-version": backend.config.api_version or ANTHROPIC_VERSION, **backend.config.headers}
        if backend.config.api_key:
            self.headers["x-api-key"] = backend.config.api_key

    async def submit(self, model: str, items: Sequence[tuple[str, Request]]) -> tuple[str, Any]:
        capabilities = self.backend.capabilities(model)
        wires: dict[str, WireRequest] = {}
        requests = []
        for custom_id, request in items:
            wire = build_request(request, provider=self.backend.name, capabilities=capabilities, stream=False)
            wires[custom_id] = wire
            requests.append({"custom_id": custom_id, "params": wire.body})
        create = self._request("POST", f"{self.base_url}/v1/messages/batches", body={"requests": requests},
                               headers=self.headers, model=model)
        job = await self._object(create, "a message batch object")
        return str(job["id"]), wires

    async def status(self, job_id: str, total: int) -> BatchState:
        url = f"{self.base_url}/v1/messages/batches/{job_id}"
        job = await self._object(self._request("GET", url, headers=self.headers), "a message batch object")
        counts = job.get("request_counts") or {}
        status = _ANTHROPIC_STATUS.get(str(job.get("processing_status")), "in_progress")
        if status == "completed" and job.get("cancel_initiated_at"):
            status = "cancelled"
        failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
        return BatchState(status, total, int(counts.get("succeeded") or 0), failed, dict(job))

    async def results(self, state: BatchState, model: str, context: Any) -> dict[str, Outcome]:
        wires: Mapping[str, WireRequest] = context or {}
        url = f"{self.base_url}/v1/messages/batches/{state.detail.get('id')}/results"
        outcomes: dict[str, Outcome] = {}
        for line in await self._jsonl(self._request("GET", url, headers=self.headers, model=model)):
            custom_id = str(line.get("custom_id", ""))
            result = line.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded" and isinstance(result.get("message"), Mapping):
                wire = wires.get(custom_id) or WireRequest({})
                outcomes[custom_id] = parse_response(result["message"], provider=self.backend.name, model=model,
                                                     wire=wire)
            elif kind == "errored":
                outcomes[custom_id] = error_from_event(result.get("error") or {}, provider=self.backend.name,
                                                       model=model)
            else:  # canceled, expired: the item never ran
                outcomes[custom_id] = APIError(
                    f"{self.backend.name} did not run batch item {custom_id}: it was {kind} (model {model}); "
                    "submit it again", provider=self.backend.name, model=model, code=str(kind), retryable=True,
                )
        return outcomes

    async def cancel(self, job_id: str) -> None:
        url = f"{self.base_url}/v1/messages/batches/{job_id}/cancel"
        await self._object(self._request("POST", url, headers=self.headers), "a message batch object")


_APIS: dict[str, type[BatchAPI]] = {"openai_chat": OpenAIBatchAPI, "openai_responses": OpenAIBatchAPI,
                                    "anthropic": AnthropicBatchAPI}


def batch_api_for(backend: Backend) -> BatchAPI:
    """The batch API of ``backend``'s provider; :class:`CapabilityError` for one without batches."""
    api = _APIS.get(backend.type_name)
    if api is None:
        raise CapabilityError(
            f"{backend.name} has no batch API here; batches run on OpenAI-style providers that offer /batches "
            "(openai, groq, together...) and on anthropic"
        )
    return api(backend)
