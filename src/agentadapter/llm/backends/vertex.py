"""The Google Vertex AI backend (``type: vertex``): Gemini and Claude models in a Google Cloud project.

:class:`VertexBackend` serves ``vertex/<model>`` ids. Gemini models (``vertex/gemini-2.5-flash``) speak
the Gemini mapping of :mod:`.gemini` on Vertex's URL scheme,
``{endpoint}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent``
(``:streamGenerateContent?alt=sse`` for streams). Claude models (``vertex/claude-sonnet-4-5@20250929``)
speak the Anthropic Messages mapping of :mod:`.anthropic_mapping` through ``.../publishers/anthropic/
models/{model}:rawPredict`` (``:streamRawPredict``), with the model in the URL rather than the body and
``anthropic_version: vertex-2023-10-16`` in the body, as Vertex requires. Both are the existing
backends with the URL and authentication swapped (:class:`_VertexGemini`, :class:`_VertexClaude`), so
their mappings, streams and error translation are the very same code.

Authentication is Google's application-default credentials through ``google-auth``
(:class:`GoogleAuth`): ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account or external-account
file), ``gcloud auth application-default login``, or the metadata server on Google Cloud; a
``credentials_file`` option names a file instead. Tokens are minted and refreshed in a worker thread
(google-auth is synchronous) and sent as ``Authorization: Bearer``. The project comes from the
``project`` option, ``GOOGLE_CLOUD_PROJECT``, ``ANTHROPIC_VERTEX_PROJECT_ID``, or the credentials;
the location from ``location``, ``GOOGLE_CLOUD_LOCATION``, ``CLOUD_ML_REGION``, else ``global``
(served by ``aiplatform.googleapis.com``; a region ``r`` by ``r-aiplatform.googleapis.com``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agentadapter.llm import catalog
from agentadapter.llm.backends.anthropic import AnthropicBackend
from agentadapter.llm.backends.anthropic_mapping import COUNT_TOKENS_PATH, MESSAGES_PATH
from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.backends.gemini import GeminiBackend
from agentadapter.llm.errors import ConfigurationError, InvalidResponseError
from agentadapter.llm.messages import Request, Response, StreamEvent
from agentadapter.llm.transport import HTTPRequest, Transport

__all__ = ["ANTHROPIC_VERTEX_VERSION", "SCOPES", "GoogleAuth", "VertexBackend"]

ANTHROPIC_VERTEX_VERSION = "vertex-2023-10-16"
"""The ``anthropic_version`` Vertex AI requires in a Claude request's body."""

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

DEFAULT_LOCATION = "global"

_PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "ANTHROPIC_VERTEX_PROJECT_ID", "GCLOUD_PROJECT")
_LOCATION_ENV = ("GOOGLE_CLOUD_LOCATION", "CLOUD_ML_REGION", "VERTEX_LOCATION")


class GoogleAuth:
    """Application-default credentials (or a credentials file) and the access tokens they mint."""

    def __init__(self, *, credentials_file: str | None = None) -> None:
        import google.auth  # noqa: F401  (fails here, with the install hint, when the extra is missing)

        self.credentials_file = credentials_file
        self.project: str | None = None
        """The project the credentials belong to, when they name one."""
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _refresh(self) -> str:
        import google.auth
        import google.auth.exceptions
        from google.auth.transport.requests import Request as AuthRequest

        with self._lock:
            try:
                if self._credentials is None:
                    if self.credentials_file:
                        credentials, project = _from_file(self.credentials_file)
                    else:
                        credentials, project = google.auth.default(scopes=list(SCOPES))
                    self._credentials, self.project = credentials, project
                if not self._credentials.valid:
                    self._credentials.refresh(AuthRequest())
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise ConfigurationError(
                    f"no Google Cloud credentials: {exc}; set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
                    "file, run `gcloud auth application-default login`, or set credentials_file: for the backend"
                ) from exc
            except google.auth.exceptions.GoogleAuthError as exc:
                raise ConfigurationError(
                    f"Google Cloud credentials could not mint an access token: {exc}; check the credentials file "
                    "and that its account is enabled"
                ) from exc
            return str(self._credentials.token)

    async def token(self) -> str:
        """A valid access token (minted or refreshed off the event loop when needed)."""
        credentials = self._credentials
        if credentials is not None and credentials.valid:
            return str(credentials.token)
        return await asyncio.to_thread(self._refresh)


def _from_file(path: str) -> tuple[Any, str | None]:
    """Credentials from a service-account or authorized-user file (``credentials_file:``)."""
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"credentials_file {path!r} could not be read as JSON: {exc}") from exc
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        found = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES))
        return found, info.get("project_id")
    if kind == "authorized_user":
        user = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES))
        return user, info.get("quota_project_id")
    raise ConfigurationError(
        f"credentials_file {path!r} is a {kind!r} file; credentials_file takes service_account or authorized_user "
        "files (for other kinds, point GOOGLE_APPLICATION_CREDENTIALS at the file)"
    )


class _VertexGemini(GeminiBackend):
    """The Gemini backend on Vertex's URL scheme."""

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None, vertex: VertexBackend) -> None:
        super().__init__(config, transport=transport)
        self.setup_problem = None  # Vertex authenticates with a token, never a Gemini API key
        self.vertex = vertex

    def _url(self, model: str, method: str) -> str:
        return self.vertex.model_url("google", model, method)

    def set_token(self, token: str) -> None:
        self._headers["authorization"] = f"Bearer {token}"

    async def count_tokens(self, request: Request) -> int:
        """Vertex's ``:countTokens`` takes the contents, system instruction and tools at the top level."""
        full = self.request_body(request)
        body = {key: full[key] for key in ("contents", "systemInstruction", "tools") if key in full}
        answer, _ = await self.send_json(self._http(request, "countTokens", body))
        total = answer.get("totalTokens") if isinstance(answer, Mapping) else None
        if not isinstance(total, int):
            raise InvalidResponseError(
                f"{self.name} answered countTokens without totalTokens (model {request.model}): {str(answer)[:200]}",
                provider=self.name, model=request.model, body=answer,
            )
        return total


class _VertexClaude(AnthropicBackend):
    """The Anthropic backend through Vertex's rawPredict / streamRawPredict."""

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None, vertex: VertexBackend) -> None:
        super().__init__(config, transport=transport)
        self.vertex = vertex
        self._token = ""

    def set_token(self, token: str) -> None:
        self._token = token

    def _post(self, path: str, request: Request, body: dict[str, Any]) -> HTTPRequest:
        headers = {"content-type": "application/json", "authorization": f"Bearer {self._token}"}
        beta = self.config.options.get("beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        if path == COUNT_TOKENS_PATH:
            # Vertex counts on a model of its own, "count-tokens", with the model named in the body.
            wire = {**body, "model": _model_name(request.model)}
            url = self.vertex.model_url("anthropic", "count-tokens", "rawPredict")
        elif path == MESSAGES_PATH:
            method = "streamRawPredict" if body.get("stream") else "rawPredict"
            wire = {key: value for key, value in body.items() if key != "model"}  # the model is in the URL
            wire["anthropic_version"] = ANTHROPIC_VERTEX_VERSION
            url = self.vertex.model_url("anthropic", request.model, method)
        else:
            raise ConfigurationError(f"{self.name} does not serve {path} on Vertex AI")
        return self.http_request("POST", url, request, body=wire, headers=headers)


class VertexBackend(Backend):
    """Gemini and Claude models on Google Vertex AI.

    Options: ``project``, ``location``, ``credentials_file``. ``base_url`` (or ``VERTEX_BASE_URL``)
    replaces the regional endpoint (a Private Service Connect endpoint, a proxy).
    """

    type_name = "vertex"

    def __init__(self, config: BackendConfig, *, transport: Transport[Any] | None = None) -> None:
        super().__init__(config, transport=transport)
        options = config.options
        self.project: str | None = options.get("project") or _first_env(_PROJECT_ENV)
        self.location: str = options.get("location") or _first_env(_LOCATION_ENV) or DEFAULT_LOCATION
        if config.base_url:
            self.endpoint = config.base_url.rstrip("/")
        elif self.location == "global":
            self.endpoint = "https://aiplatform.googleapis.com"
        else:
            self.endpoint = f"https://{self.location}-aiplatform.googleapis.com"
        self.auth: GoogleAuth | None = None
        try:
            self.auth = GoogleAuth(credentials_file=options.get("credentials_file"))
        except ImportError:
            self.setup_problem = "Google Vertex AI needs google-auth: pip install 'agentadapter[vertex]'"
        inner = dataclasses.replace(config, base_url=self.endpoint, api_key=None, options=dict(options))
        self._gemini = _VertexGemini(inner, transport=self.transport, vertex=self)
        self._claude = _VertexClaude(inner, transport=self.transport, vertex=self)
        # One list: the facade's rate-limit learning hears both publishers' answers.
        self._gemini.header_listeners = self._claude.header_listeners = self.header_listeners

    def model_url(self, publisher: str, model: str, method: str) -> str:
        if not self.project:
            raise ConfigurationError(
                f"no Google Cloud project for {self.name}; set GOOGLE_CLOUD_PROJECT (or project: under the "
                "backend in agentadapter.yaml), or use credentials that name one"
            )
        name = _model_name(model)
        return (f"{self.endpoint}/v1/projects/{quote(self.project, safe='')}/locations/{quote(self.location, safe='')}"
                f"/publishers/{publisher}/models/{quote(name, safe='@')}:{method}")

    def _publisher(self, model: str) -> _VertexGemini | _VertexClaude:
        return self._claude if model.rsplit("/", 1)[-1].startswith("claude") else self._gemini

    async def _ready(self, request: Request) -> _VertexGemini | _VertexClaude:
        self.check_setup(request.model)
        assert self.auth is not None
        token = await self.auth.token()
        if not self.project:
            self.project = self.auth.project
        backend = self._publisher(request.model)
        backend.set_token(token)
        return backend

    # ---------------------------------------------------------------------------- the contract

    async def generate(self, request: Request) -> Response:
        return await (await self._ready(request)).generate(request)

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        backend = await self._ready(request)
        async for event in backend.stream(request):
            yield event

    async def count_tokens(self, request: Request) -> int:
        return await (await self._ready(request)).count_tokens(request)

    def capabilities(self, model: str) -> catalog.Capabilities:
        return catalog.lookup(f"vertex/{model}")


def _model_name(model: str) -> str:
    """The bare model name; ``publishers/google/models/<model>`` is accepted too."""
    return model.rsplit("/", 1)[-1]


def _first_env(names: tuple[str, ...]) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)
