"""A worked example: a backend for a new wire format, and its conformance run.

"Acme" is a made-up provider with its own JSON shape. ``AcmeBackend`` maps the neutral model to it
and back; ``AcmeServer`` is a loopback server speaking it, with the conformance kit's scripting
methods; ``main()`` registers the backend and runs the kit. docs/backends.md walks through it.

    python examples/custom_backend.py
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from agentadapter import register_backend
from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.errors import error_from_event
from agentadapter.llm.messages import (
    FinishReason,
    Request,
    Response,
    StreamAccumulator,
    StreamEvent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from agentadapter.testing import backend_conformance

# Wire -> neutral tables are module-level dicts, so an unknown value is one look-up away.
SPEAKERS = {"system": "system", "user": "human", "assistant": "bot", "tool": "tool"}
STOPS: dict[str, FinishReason] = {"done": "stop", "calls": "tool_calls", "cut": "length"}


class AcmeBackend(Backend):
    """The Acme API: POST {base_url}/generate, JSON in and out, SSE when streaming."""

    type_name = "acme"

    def _body(self, request: Request, *, stream: bool) -> dict[str, Any]:
        lines: list[dict[str, Any]] = []
        for message in request.messages:
            for part in message.parts:
                if isinstance(part, TextPart):
                    lines.append({"speaker": SPEAKERS[message.role], "text": part.text})
                elif isinstance(part, ToolCallPart):
                    lines.append({"speaker": "bot", "call": {"id": part.id, "fn": part.name, "args": part.arguments}})
                elif isinstance(part, ToolResultPart):
                    lines.append({"speaker": "tool", "for": part.call_id, "text": part.content,
                                  "failed": part.is_error})
                else:  # be explicit: a part this provider cannot take is an error, never dropped
                    raise ValueError(f"Acme cannot take a {part.kind} part")
        body: dict[str, Any] = {"model": request.model, "lines": lines, "stream": stream}
        if request.tools:
            body["functions"] = [{"name": t.name, "schema": t.parameters} for t in request.tools]
        if request.max_tokens is not None:
            body["limit"] = request.max_tokens
        return body

    def _headers(self) -> dict[str, str]:
        return {"x-acme-key": self.config.api_key or ""}

    async def generate(self, request: Request) -> Response:
        http = self.http_request("POST", f"{self.config.base_url}/generate", request,
                                 body=self._body(request, stream=False), headers=self._headers())
        data, _ = await self.send_json(http)  # translates error statuses into our error tree
        parts: list[Any] = []
        if data["output"].get("text"):
            parts.append(TextPart(data["output"]["text"]))
        parts.extend(ToolCallPart(c["id"], c["fn"], c["args"]) for c in data["output"].get("calls", []))
        return Response(id=data["id"], provider=self.name, model=request.model, parts=parts,
                        finish_reason=STOPS.get(data["stop"], "stop"),
                        usage=Usage(data["tokens"]["in"], data["tokens"]["out"]))

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        http = self.http_request("POST", f"{self.config.base_url}/generate", request,
                                 body=self._body(request, stream=True), headers=self._headers())
        accumulator = StreamAccumulator(self.name, request.model)
        async for event in self.send_sse(http):
            data = self.stream_json(event, request.model)
            if event.event == "delta":
                yield accumulator.add(StreamEvent("text", text=data["text"]))
            elif event.event == "call":
                call = ToolCallPart(data["id"], data["fn"], data["args"])
                yield accumulator.add(StreamEvent("tool_call", tool_call=call))
            elif event.event == "end":
                accumulator.id = data["id"]
                yield accumulator.add(StreamEvent("usage", usage=Usage(data["tokens"]["in"], data["tokens"]["out"])))
                yield accumulator.finish(STOPS.get(data["stop"], "stop"))
                return
            elif event.event == "problem":
                raise error_from_event({"error": data}, provider=self.name, model=request.model)


class AcmeServer:
    """Acme's API on loopback, scripted the way the conformance kit asks."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.received = 0
        self.last_body: Any = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ ConformanceServer methods
    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        self.script.append((200, {"output": {"text": text}, "stop": "done",
                                  "tokens": {"in": input_tokens, "out": output_tokens}}, {}))

    def queue_tool_calls(self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int,
                         output_tokens: int) -> None:
        wire_calls = [{"id": f"c{i}", "fn": name, "args": args} for i, (name, args) in enumerate(calls)]
        self.script.append((200, {"output": {"calls": wire_calls}, "stop": "calls",
                                  "tokens": {"in": input_tokens, "out": output_tokens}}, {}))

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.script.append((status, {"error": {"message": message}}, headers or {}))

    def request_count(self) -> int:
        return self.received

    def last_request_body(self) -> Any:
        return self.last_body

    # ------------------------------------------------------------------------------- the server
    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received += 1
        self.last_body = body
        status, answer, headers = self.script.pop(0)
        if status != 200:
            return web.json_response(answer, status=status, headers=headers)
        answer = {"id": f"acme-{self.received}", **answer}
        if not body["stream"]:
            return web.json_response(answer)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for word in (answer["output"].get("text") or "").split(" "):
            if word:
                prefix = "" if word == answer["output"]["text"].split(" ")[0] else " "
                await response.write(f"event: delta\ndata: {json.dumps({'text': prefix + word})}\n\n".encode())
        for call in answer["output"].get("calls", []):
            await response.write(f"event: call\ndata: {json.dumps(call)}\n\n".encode())
        end = {"id": answer["id"], "tokens": answer["tokens"], "stop": answer["stop"]}
        await response.write(f"event: end\ndata: {json.dumps(end)}\n\n".encode())
        await response.write_eof()
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/generate", self._generate)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def main() -> backend_conformance.ConformanceReport:
    register_backend("acme", AcmeBackend)  # now `type: acme` works in agentadapter.yaml
    server = AcmeServer()
    await server.start()
    backends: list[AcmeBackend] = []

    def make() -> Backend:
        backend = AcmeBackend(BackendConfig(name="acme", type="acme", base_url=server.url, api_key="k"))
        backends.append(backend)
        return backend

    try:
        return await backend_conformance.run_conformance(make, server, "acme-1")
    finally:
        for backend in backends:
            await backend.aclose()
        await server.close()


if __name__ == "__main__":
    report = asyncio.run(main())
    print(report)
    raise SystemExit(0 if report.passed else 1)
