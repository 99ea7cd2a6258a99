"""An OpenAI-compatible loopback server whose errors quote the caller's key, as real providers' do.

OpenAI answers a wrong key with ``401 {"error": {"message": "Incorrect API key provided: sk-..."}}``;
other servers echo the ``Authorization`` header or the ``?key=`` parameter in a 400 or a plain-text
500. :meth:`LeakyOpenAIFake.leak` queues such answers, built from what the request actually sent (so
the key in them is the one the client used, whole or cut short); everything else is
:class:`~fakes.openai_server.OpenAIFake`'s.
"""

from __future__ import annotations

from aiohttp import web

from .openai_server import OpenAIFake
from .server import Recorded


def _key_of(recorded: Recorded) -> str:
    authorization = recorded.headers.get("authorization", "")
    return authorization.removeprefix("Bearer ").strip() or recorded.query.get("key", "")


def leaked_body(status: int, key: str) -> tuple[str, bytes]:
    """The content type and body a provider would send for ``status``, quoting ``key``."""
    import json

    if status == 401:
        message = (f"Incorrect API key provided: {key}. You can find your API key at "
                   "https://platform.openai.com/account/api-keys.")
        return "application/json", json.dumps({"error": {
            "message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}).encode()
    if status == 400:
        # A prefix of the key (no exact match possible) inside a URL the server quotes back.
        message = (f"Invalid request to https://upstream.example/v1/chat?api_key={key[:-6]}&x=1 "
                   f"(key {key[:-6]}...)")
        return "application/json", json.dumps({"error": {
            "message": message, "type": "invalid_request_error", "param": "model", "code": None,
            "request": {"headers": {"Authorization": f"Bearer {key}"}}}}).encode()
    return "text/plain", f"upstream proxy error: header Authorization: Bearer {key} was refused".encode()


class LeakyOpenAIFake(OpenAIFake):
    """:class:`OpenAIFake` plus answers that quote the key of the request they answer."""

    def __init__(self) -> None:
        super().__init__()
        self.leaks: list[int] = []
        # Ahead of the chat and model handlers, so a queued leak answers the next call.
        self._prefix_routes.insert(0, ("POST", "/", self._leaky))

    def leak(self, status: int, *, times: int = 1) -> None:
        """The next ``times`` calls answer ``status`` (401, 400 or a 5xx) with a body quoting their key."""
        self.leaks.extend([status] * times)

    async def _leaky(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if not self.leaks:
            return await self._chat(request, recorded)
        status = self.leaks.pop(0)
        content_type, body = leaked_body(status, _key_of(recorded))
        return web.Response(status=status, body=body, content_type=content_type)
