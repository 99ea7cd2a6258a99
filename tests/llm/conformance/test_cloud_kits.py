"""The public conformance kit run against the cloud backends (Bedrock, Vertex AI), each over its loopback fake
with real authentication: SigV4 signatures the Bedrock fake recomputes, Google access tokens minted by
google-auth from a service-account key against a fake token endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentadapter.llm.backends.base import Backend, BackendConfig
from agentadapter.llm.backends.bedrock import BedrockBackend
from agentadapter.llm.backends.vertex import VertexBackend
from agentadapter.testing import backend_conformance
from fakes.bedrock_server import BedrockFake
from fakes.server import FakeServer
from fakes.vertex_server import VertexFake

from ..backends.test_vertex import service_account
from .adapters import AnthropicKitServer, GeminiKitServer

_BEDROCK_ERRORS = {401: (403, "UnrecognizedClientException"), 429: (429, "ThrottlingException"),
                   500: (500, "InternalServerException"), 400: (400, "ValidationException")}


class BedrockKitServer:
    def __init__(self, fake: BedrockFake) -> None:
        self.fake = fake

    def queue_text(self, text: str, *, input_tokens: int, output_tokens: int) -> None:
        self.fake.reply(text, usage={"inputTokens": input_tokens, "outputTokens": output_tokens})

    def queue_tool_calls(self, calls: list[tuple[str, dict[str, Any]]], *, input_tokens: int,
                         output_tokens: int) -> None:
        self.fake.reply(tool_uses=[{"name": n, "input": a} for n, a in calls],
                        usage={"inputTokens": input_tokens, "outputTokens": output_tokens})

    def queue_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        wire_status, error_type = _BEDROCK_ERRORS.get(status, (status, "InternalServerException"))
        self.fake.error(wire_status, error_type, message, headers=headers)

    def request_count(self) -> int:
        return len(self.fake.requests)

    def last_request_body(self) -> Any:
        return self.fake.requests[-1].json


@dataclass
class CloudKit:
    server: FakeServer
    kit_server: Any
    make: Callable[[], Backend]
    model: str
    extra: list[FakeServer]


@pytest.fixture(autouse=True)
def no_ambient_cloud_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


def _bedrock() -> CloudKit:
    fake = BedrockFake()

    def make() -> Backend:
        return BedrockBackend(BackendConfig(name="bedrock", type="bedrock", base_url=fake.url, options={
            "region": fake.region, "aws_access_key_id": fake.access_key,
            "aws_secret_access_key": fake.secret_key}))

    return CloudKit(fake, BedrockKitServer(fake), make, "anthropic.claude-3-5-haiku-20241022-v1:0", [])


def _vertex(publisher: str, tmp: Path) -> CloudKit:
    fake = VertexFake()
    credentials = tmp / "service-account.json"

    def make() -> Backend:
        if not credentials.exists():  # written once the fake listens: its token_uri names the port
            service_account(fake, tmp)
        return VertexBackend(BackendConfig(name="vertex", type="vertex", base_url=fake.url, options={
            "location": fake.location, "credentials_file": str(credentials)}))

    if publisher == "google":
        return CloudKit(fake, GeminiKitServer(fake.gemini), make, "gemini-2.5-flash", [])
    return CloudKit(fake, AnthropicKitServer(fake.anthropic), make, "claude-sonnet-4-5@20250929", [])


KITS: dict[str, Callable[[Path], CloudKit]] = {
    "bedrock": lambda tmp: _bedrock(),
    "vertex-gemini": lambda tmp: _vertex("google", tmp),
    "vertex-claude": lambda tmp: _vertex("anthropic", tmp),
}


@pytest.fixture(params=sorted(KITS))
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CloudKit]:
    built = KITS[request.param](tmp_path)
    for server in (built.server, *built.extra):
        await server.start()
    yield built
    for server in (built.server, *built.extra):
        await server.close()


@pytest.mark.parametrize("check", list(backend_conformance.CHECKS))
async def test_conformance(kit: CloudKit, check: str) -> None:
    await backend_conformance.CHECKS[check](kit.make, kit.kit_server, kit.model)
