"""Loopback fakes of OpenAI's Batch API (``/v1/files`` + ``/v1/batches``) and Anthropic's Message Batches.

Both check what the real services check where a client bug would show: the key, the upload's
multipart form (``purpose=batch``, a ``.jsonl`` file), each JSONL line's ``custom_id`` (unique),
``method`` and ``url`` (the batch's endpoint), each request's ``model``, ``messages`` (and Anthropic's
``max_tokens``). A job stays ``in_progress`` for ``polls_in_progress`` polls (so progress is seen),
then ends; its answers are written in *reverse* request order, as the services promise no order, so
a client that reads them positionally fails. A request whose last user text contains ``FAIL`` fails
alone, in the provider's per-item error shape; every other one is answered ``echo: <text>`` with
usage ``input_tokens`` / ``output_tokens`` (10 and 5 unless set). Jobs can be cancelled.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .server import FakeServer, Recorded


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            return texts[-1]
    return ""


@dataclass
class Job:
    id: str
    requests: list[dict[str, Any]]
    polls_left: int
    status: str = "in_progress"
    results: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False


class OpenAIBatchFake(FakeServer):
    """``/v1/files`` (upload, content) and ``/v1/batches`` (create, retrieve, cancel)."""

    def __init__(self, *, api_key: str = "test-key", polls_in_progress: int = 2, input_tokens: int = 10,
                 output_tokens: int = 5) -> None:
        super().__init__()
        self.api_key = api_key
        self.polls_in_progress = polls_in_progress
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.polls = 0
        self._ids = itertools.count(1)
        self.route("POST", "/v1/files", self._upload)
        self.route("GET", "/v1/files/", self._content, prefix=True)
        self.route("POST", "/v1/batches", self._create)
        self.route("GET", "/v1/batches/", self._retrieve, prefix=True)
        self.route("POST", "/v1/batches/", self._cancel, prefix=True)

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": {"message": message, "type": "invalid_request_error", "code": None}},
                                 status=status)

    def _authorized(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {self.api_key}"

    async def _upload(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not self._authorized(recorded):
            return self._error(401, "Incorrect API key provided")
        content_type = recorded.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._error(400, "Expected multipart/form-data")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + recorded.body)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True))
        if fields.get("purpose", (None, b""))[1] != b"batch":
            return self._error(400, "purpose must be 'batch'")
        filename, content = fields.get("file", (None, None))
        if not filename or not str(filename).endswith(".jsonl") or not content:
            return self._error(400, "file must be a non-empty .jsonl file")
        file_id = f"file-{next(self._ids):04d}"
        self.files[file_id] = content
        return web.json_response({"id": file_id, "object": "file", "purpose": "batch", "filename": filename,
                                  "bytes": len(content)})

    async def _create(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not self._authorized(recorded):
            return self._error(401, "Incorrect API key provided")
        body = recorded.json
        content = self.files.get(body.get("input_file_id", ""))
        if content is None:
            return self._error(404, f"No such File object: {body.get('input_file_id')}")
        endpoint = body.get("endpoint")
        if endpoint != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return self._error(400, "endpoint must be /v1/chat/completions and completion_window 24h here")
        requests: list[dict[str, Any]] = []
        seen: set[str] = set()
        for number, line in enumerate(content.decode().splitlines(), 1):
            entry = json.loads(line)
            if entry.get("custom_id") in seen or not entry.get("custom_id"):
                return self._error(400, f"line {number}: custom_id must be unique and present")
            seen.add(entry["custom_id"])
            if entry.get("method") != "POST" or entry.get("url") != endpoint:
                return self._error(400, f"line {number}: method POST and url {endpoint} are required")
            if not entry["body"].get("model") or not entry["body"].get("messages"):
                return self._error(400, f"line {number}: body.model and body.messages are required")
            if entry["body"].get("stream"):
                return self._error(400, f"line {number}: streaming is not supported in batches")
            requests.append(entry)
        job = Job(f"batch_{next(self._ids):04d}", requests, self.polls_in_progress, status="validating")
        self.jobs[job.id] = job
        return web.json_response(self._object(job))

    def _object(self, job: Job) -> dict[str, Any]:
        failed = sum(1 for r in job.results if r["error"] or r["response"]["status_code"] >= 400)
        data: dict[str, Any] = {
            "id": job.id, "object": "batch", "endpoint": "/v1/chat/completions", "status": job.status,
            "input_file_id": "file", "completion_window": "24h",
            "request_counts": {"total": len(job.requests), "completed": len(job.results) - failed, "failed": failed},
            "output_file_id": None, "error_file_id": None,
        }
        if job.status in ("completed", "cancelled", "expired"):
            data["output_file_id"] = f"{job.id}-output"
            data["error_file_id"] = f"{job.id}-errors" if failed else None
        return data

    def _run(self, job: Job, count: int | None = None) -> None:
        done = len(job.results)
        for entry in job.requests[done: None if count is None else done + count]:
            text = _last_user_text(entry["body"]["messages"])
            if "FAIL" in text:
                job.results.append({"id": f"resp_{entry['custom_id']}", "custom_id": entry["custom_id"], "error": None,
                                    "response": {"status_code": 400, "request_id": "req_fail", "body": {"error": {
                                        "message": "Invalid 'messages': this request was refused",
                                        "type": "invalid_request_error", "code": "invalid_value"}}}})
                continue
            job.results.append({"id": f"resp_{entry['custom_id']}", "custom_id": entry["custom_id"], "error": None,
                                "response": {"status_code": 200, "request_id": f"req_{entry['custom_id']}", "body": {
                                    "id": f"chatcmpl-{entry['custom_id']}", "object": "chat.completion",
                                    "model": entry["body"]["model"],
                                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                        "role": "assistant", "content": f"echo: {text}"}}],
                                    "usage": {"prompt_tokens": self.input_tokens,
                                              "completion_tokens": self.output_tokens,
                                              "total_tokens": self.input_tokens + self.output_tokens}}}})

    async def _retrieve(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not self._authorized(recorded):
            return self._error(401, "Incorrect API key provided")
        job = self.jobs.get(request.path.rsplit("/", 1)[-1])
        if job is None:
            return self._error(404, "No such batch")
        self.polls += 1
        if job.status == "validating":
            job.status = "in_progress"
        elif job.status == "in_progress":
            if job.polls_left > 0:
                job.polls_left -= 1
                self._run(job, max(1, len(job.requests) // (self.polls_in_progress + 1)))
            else:
                self._run(job)
                job.status = "completed"
        elif job.status == "cancelling":
            job.status = "cancelled"
        return web.json_response(self._object(job))

    async def _cancel(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        job_id, _, action = request.path[len("/v1/batches/"):].partition("/")
        job = self.jobs.get(job_id)
        if job is None or action != "cancel":
            return self._error(404, "No such batch")
        job.status = "cancelling"
        return web.json_response(self._object(job))

    async def _content(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not self._authorized(recorded):
            return self._error(401, "Incorrect API key provided")
        file_id, _, rest = request.path[len("/v1/files/"):].partition("/")
        job_id, _, kind = file_id.rpartition("-")
        job = self.jobs.get(job_id)
        if job is None or rest != "content":
            return self._error(404, f"No such File object: {file_id}")
        failed = kind == "errors"
        lines = [r for r in reversed(job.results) if (r["response"]["status_code"] >= 400) == failed]
        return web.Response(body=("\n".join(json.dumps(line) for line in lines) + "\n").encode(),
                            content_type="application/octet-stream")


class AnthropicBatchFake(FakeServer):
    """``/v1/messages/batches`` (create, retrieve, results, cancel)."""

    def __init__(self, *, api_key: str = "sk-ant-test-key", polls_in_progress: int = 2, input_tokens: int = 10,
                 output_tokens: int = 5) -> None:
        super().__init__()
        self.api_key = api_key
        self.polls_in_progress = polls_in_progress
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.jobs: dict[str, Job] = {}
        self.polls = 0
        self._ids = itertools.count(1)
        self.route("POST", "/v1/messages/batches", self._create)
        self.route("GET", "/v1/messages/batches/", self._get, prefix=True)
        self.route("POST", "/v1/messages/batches/", self._cancel, prefix=True)

    @staticmethod
    def _error(status: int, error_type: str, message: str) -> web.Response:
        return web.json_response({"type": "error", "error": {"type": error_type, "message": message}}, status=status)

    def _check(self, recorded: Recorded) -> web.Response | None:
        if recorded.headers.get("x-api-key") != self.api_key:
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not recorded.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def _create(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        refused = self._check(recorded)
        if refused is not None:
            return refused
        requests = recorded.json.get("requests")
        if not isinstance(requests, list) or not requests:
            return self._error(400, "invalid_request_error", "requests: at least one request is required")
        seen: set[str] = set()
        for index, entry in enumerate(requests):
            params = entry.get("params") or {}
            if entry.get("custom_id") in seen or not entry.get("custom_id"):
                return self._error(400, "invalid_request_error", f"requests.{index}.custom_id must be unique")
            seen.add(entry["custom_id"])
            if not params.get("model") or not params.get("messages") or not params.get("max_tokens"):
                return self._error(400, "invalid_request_error", f"requests.{index}.params: model, max_tokens and "
                                                                 "messages are required")
            if params.get("stream"):
                return self._error(400, "invalid_request_error", "stream is not supported in batches")
        job = Job(f"msgbatch_{next(self._ids):04d}", requests, self.polls_in_progress)
        self.jobs[job.id] = job
        return web.json_response(self._object(job))

    def _object(self, job: Job) -> dict[str, Any]:
        counts = {"processing": len(job.requests) - len(job.results), "succeeded": 0, "errored": 0, "canceled": 0,
                  "expired": 0}
        for result in job.results:
            counts[result["result"]["type"]] += 1
        ended = job.status != "in_progress" and job.status != "canceling"
        return {"id": job.id, "type": "message_batch", "processing_status": job.status,
                "request_counts": counts, "cancel_initiated_at": "2026-01-01T00:00:00Z" if job.cancelled else None,
                "results_url": f"https://elsewhere.invalid/v1/messages/batches/{job.id}/results" if ended else None}

    def _run(self, job: Job, count: int | None = None) -> None:
        done = len(job.results)
        for entry in job.requests[done: None if count is None else done + count]:
            params = entry["params"]
            text = _last_user_text(params["messages"])
            if job.cancelled:
                job.results.append({"custom_id": entry["custom_id"], "result": {"type": "canceled"}})
            elif "FAIL" in text:
                job.results.append({"custom_id": entry["custom_id"], "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": "invalid_request_error",
                                               "message": "messages: this request was refused"}}}})
            else:
                job.results.append({"custom_id": entry["custom_id"], "result": {"type": "succeeded", "message": {
                    "id": f"msg_{entry['custom_id']}", "type": "message", "role": "assistant",
                    "model": params["model"], "content": [{"type": "text", "text": f"echo: {text}"}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}}}})

    async def _get(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        refused = self._check(recorded)
        if refused is not None:
            return refused
        job_id, _, action = request.path[len("/v1/messages/batches/"):].partition("/")
        job = self.jobs.get(job_id)
        if job is None:
            return self._error(404, "not_found_error", f"batch {job_id} not found")
        if action == "results":
            if job.status != "ended":
                return self._error(400, "invalid_request_error", "results are available once the batch has ended")
            lines = [json.dumps(result) for result in reversed(job.results)]
            return web.Response(body=("\n".join(lines) + "\n").encode(), content_type="application/binary")
        self.polls += 1
        if job.status in ("in_progress", "canceling"):
            if job.polls_left > 0 and job.status == "in_progress":
                job.polls_left -= 1
                self._run(job, max(1, len(job.requests) // (self.polls_in_progress + 1)))
            else:
                self._run(job)
                job.status = "ended"
        return web.json_response(self._object(job))

    async def _cancel(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        job_id, _, action = request.path[len("/v1/messages/batches/"):].partition("/")
        job = self.jobs.get(job_id)
        if job is None or action != "cancel":
            return self._error(404, "not_found_error", "batch not found")
        job.cancelled = True
        job.status = "canceling"
        return web.json_response(self._object(job))
