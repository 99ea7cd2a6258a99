"""A loopback fake of Google Vertex AI and of Google's OAuth token endpoint.

:class:`VertexFake` is one server with two faces. ``POST /token`` is the OAuth 2.0 token endpoint a
service account's ``token_uri`` names: it verifies the signed JWT assertion google-auth sends (RS256
with the public half of the key the test generated, the issuer, the audience (Google's token endpoint), the cloud-platform
scope, the expiry) and mints an access token. ``POST /v1/projects/{p}/locations/{l}/publishers/{pub}/
models/{model}:{method}`` is Vertex: it requires ``Authorization: Bearer`` with a token it minted, the
project and location it was set up with, and then serves Google's publisher (``generateContent``,
``streamGenerateContent?alt=sse``) by forwarding to a :class:`~fakes.gemini_server.GeminiFake`, and
Anthropic's (``rawPredict``, ``streamRawPredict``, and the ``count-tokens`` model) by checking Vertex's own rules (no ``model`` in the
body, ``anthropic_version: vertex-2023-10-16``) and forwarding to an
:class:`~fakes.anthropic_server.AnthropicFake` with the model put back. So the inner fakes' checks of
each wire format apply unchanged, and their scripts (``reply``, errors) drive the answers.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import jwt
from aiohttp import web

from .anthropic_server import AnthropicFake
from .gemini_server import GeminiFake, gemini_error
from .server import FakeServer, Recorded

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience of a service account's assertion: Google's token endpoint, whatever token_uri says."""

_PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/(google|anthropic)/models/([^/:]+):(\w+)$")


class VertexFake(FakeServer):
    """Vertex AI plus a token endpoint. ``public_key_pem`` verifies the service account's assertions."""

    def __init__(self, *, project: str = "test-project", location: str = "us-east5",
                 client_email: str = "runner@test-project.iam.gserviceaccount.com",
                 public_key_pem: bytes | None = None) -> None:
        super().__init__()
        self.project = project
        self.location = location
        self.client_email = client_email
        self.public_key_pem = public_key_pem
        self.gemini = GeminiFake(api_key=None, models=["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"])
        self.anthropic = AnthropicFake(api_key=None)
        self.issued: set[str] = set()
        self.assertions: list[dict[str, Any]] = []
        self.vertex_requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self.route("POST", "/token", self._token)
        self.route("POST", "/v1/projects/", self._vertex, prefix=True)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    async def start(self) -> VertexFake:
        await self.gemini.start()
        await self.anthropic.start()
        await super().start()
        return self

    async def close(self) -> None:
        await super().close()
        await self.gemini.close()
        await self.anthropic.close()

    async def __aenter__(self) -> VertexFake:
        return await self.start()

    # ------------------------------------------------------------------------------ token endpoint

    async def _token(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        form = {k: v[0] for k, v in parse_qs(recorded.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            assert self.public_key_pem is not None
            claims = jwt.decode(form.get("assertion", ""), self.public_key_pem, algorithms=["RS256"],
                                audience=GOOGLE_TOKEN_AUDIENCE, options={"require": ["exp", "iat", "iss", "aud"]})
        except (jwt.PyJWTError, AssertionError) as exc:
            return web.json_response({"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"},
                                     status=400)
        if claims.get("iss") != self.client_email:
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid issuer"}, status=400)
        if "https://www.googleapis.com/auth/cloud-platform" not in str(claims.get("scope", "")).split():
            return web.json_response({"error": "invalid_scope"}, status=400)
        self.assertions.append(claims)
        token = f"ya29.fake-{next(self._ids):04d}"
        self.issued.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer",
                                  "issued_at": int(time.time())})

    # ---------------------------------------------------------------------------------- Vertex

    async def _vertex(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        self.vertex_requests.append(recorded)
        match = _PATH.match(request.path)
        if match is None:
            return self._error(404, f"The requested URL {request.path} was not found on this server.")
        project, location, publisher, model, method = match.groups()
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer ") or authorization[len("Bearer "):] not in self.issued:
            return self._error(401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                                    "token, login cookie or other valid authentication credential.")
        if (project, location) != (self.project, self.location):
            return self._error(403, f"Permission 'aiplatform.endpoints.predict' denied on resource "
                                    f"'projects/{project}/locations/{location}' (or it may not exist).")
        if publisher == "google":
            query = "?alt=sse" if request.query.get("alt") == "sse" else ""
            return await self._forward(request, f"{self.gemini.url}/v1beta/models/{model}:{method}{query}",
                                       recorded.body, {"content-type": "application/json"})
        if method not in ("rawPredict", "streamRawPredict"):
            return self._error(400, f"Anthropic models take rawPredict or streamRawPredict, not {method}")
        body = json.loads(recorded.body)
        if model == "count-tokens":
            # Vertex's token counter: the model is named in the body, as Anthropic's count_tokens takes it.
            if "model" not in body or method != "rawPredict":
                return self._anthropic_error("count-tokens takes rawPredict with the model in the body")
            body["model"] = str(body["model"]).split("@", 1)[0]
            return await self._forward(request, f"{self.anthropic.url}/v1/messages/count_tokens",
                                       json.dumps(body).encode(),
                                       {"content-type": "application/json", "anthropic-version": "2023-06-01"})
        if "model" in body:
            return self._anthropic_error("model: Extra inputs are not permitted")
        if body.pop("anthropic_version", None) != "vertex-2023-10-16":
            return self._anthropic_error("anthropic_version: must be vertex-2023-10-16")
        if bool(body.get("stream")) != (method == "streamRawPredict"):
            return self._anthropic_error(f"{method} does not match stream={body.get('stream')!r}")
        body["model"] = model.split("@", 1)[0]
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        return await self._forward(request, f"{self.anthropic.url}/v1/messages", json.dumps(body).encode(), headers)

    async def _forward(self, request: web.Request, url: str, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                "content-type": upstream.headers.get("content-type", "application/json"),
                **{k: v for k, v in upstream.headers.items() if k.lower() == "retry-after"}})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response(gemini_error(status, message), status=status)

    @staticmethod
    def _anthropic_error(message: str) -> web.Response:
        return web.json_response({"type": "error", "error": {"type": "invalid_request_error", "message": message}},
                                 status=400)
