"""VertexBackend against a loopback Vertex AI whose access tokens google-auth mints for real: from a
service-account file the test writes (a freshly generated RSA key), through a fake token endpoint that
verifies the signed assertion."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentadapter import LLM
from agentadapter.llm.backends.base import BackendConfig
from agentadapter.llm.backends.vertex import VertexBackend
from agentadapter.llm.errors import ConfigurationError, PermissionDeniedError, RateLimitError
from agentadapter.llm.messages import Message, Request
from agentadapter.llm.tools import Tool
from fakes.vertex_server import VertexFake

WEATHER = Tool("get_weather", "The weather in a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
_GOOGLE_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "ANTHROPIC_VERTEX_PROJECT_ID",
                "GCLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "CLOUD_ML_REGION", "VERTEX_LOCATION", "VERTEX_BASE_URL")


def service_account(fake: VertexFake, directory: Path) -> Path:
    """A service-account key file, as the console downloads it, whose token_uri is the fake's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake.public_key_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    path = directory / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": fake.project, "private_key_id": "key-1",
        "private_key": private_pem, "client_email": fake.client_email, "client_id": "1234567890",
        "token_uri": fake.token_uri, "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }))
    return path


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[VertexFake]:
    for name in _GOOGLE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login of the machine
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # never ask the metadata server
    async with VertexFake() as server:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account(server, tmp_path)))
        yield server


def backend_for(fake: VertexFake, **options: Any) -> VertexBackend:
    return VertexBackend(BackendConfig(name="vertex", type="vertex", base_url=fake.url,
                                       options={"location": fake.location, **options}))


async def test_gemini_on_vertex_with_a_minted_token(fake: VertexFake) -> None:
    fake.gemini.reply("Hello from Gemini", usage={"promptTokenCount": 9, "candidatesTokenCount": 3,
                                                  "totalTokenCount": 12})
    backend = backend_for(fake)
    response = await backend.generate(Request(model="gemini-2.5-flash", messages=[Message.user("Hi")]))
    assert response.text == "Hello from Gemini"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (9, 3)
    # The project came from the service account; the token from google-auth's real flow.
    assert backend.project == "test-project"
    [claims] = fake.assertions
    assert claims["iss"] == fake.client_email and claims["aud"] == "https://oauth2.googleapis.com/token"
    sent = fake.vertex_requests[-1]
    assert sent.path == "/v1/projects/test-project/locations/us-east5/publishers/google/models/gemini-2.5-flash" \
                        ":generateContent"
    assert sent.headers["authorization"].startswith("Bearer ya29.fake-")
    assert "x-goog-api-key" not in sent.headers
    # The token is reused while valid: a second call mints none.
    await backend.generate(Request(model="gemini-2.5-flash", messages=[Message.user("Again")]))
    await backend.aclose()
    assert len(fake.assertions) == 1


async def test_gemini_streams_and_calls_tools(fake: VertexFake) -> None:
    fake.gemini.reply(function_calls=[{"name": "get_weather", "args": {"city": "Rome"}}])
    backend = backend_for(fake)
    events = [e async for e in backend.stream(Request(model="gemini-2.5-flash", messages=[Message.user("Rome?")],
                                                      tools=[WEATHER]))]
    await backend.aclose()
    final = events[-1].response
    assert final is not None and final.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in final.tool_calls] == [("get_weather", {"city": "Rome"})]
    assert fake.vertex_requests[-1].query == {"alt": "sse"}


async def test_claude_on_vertex_uses_raw_predict(fake: VertexFake) -> None:
    fake.anthropic.reply("Hello from Claude", usage={"input_tokens": 11, "output_tokens": 4})
    backend = backend_for(fake)
    response = await backend.generate(Request(model="claude-sonnet-4-5@20250929", messages=[Message.user("Hi")]))
    assert response.text == "Hello from Claude"
    sent = fake.vertex_requests[-1]
    assert sent.path.endswith("/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict")
    body = sent.json
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body
    assert fake.anthropic.requests[-1].json["model"] == "claude-sonnet-4-5"
    fake.anthropic.reply(tool_uses=[{"name": "get_weather", "input": {"city": "Lima"}}])
    events = [e async for e in backend.stream(Request(model="claude-sonnet-4-5@20250929",
                                                      messages=[Message.user("Lima?")], tools=[WEATHER]))]
    await backend.aclose()
    assert fake.vertex_requests[-1].path.endswith(":streamRawPredict")
    final = events[-1].response
    assert final is not None and [(c.name, c.arguments) for c in final.tool_calls] == [
        ("get_weather", {"city": "Lima"})]


async def test_the_wrong_project_is_permission_denied(fake: VertexFake) -> None:
    backend = backend_for(fake, project="someone-elses")
    with pytest.raises(PermissionDeniedError, match=r"aiplatform\.endpoints\.predict"):
        await backend.generate(Request(model="gemini-2.5-flash", messages=[Message.user("Hi")]))
    await backend.aclose()


async def test_provider_errors_come_through_each_mapping(fake: VertexFake) -> None:
    fake.anthropic.rate_limited(retry_after=3)
    backend = backend_for(fake)
    with pytest.raises(RateLimitError) as caught:
        await backend.generate(Request(model="claude-haiku-4-5@20251001", messages=[Message.user("Hi")]))
    await backend.aclose()
    assert caught.value.retry_after == 3


async def test_missing_credentials_say_how_to_give_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _GOOGLE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    backend = VertexBackend(BackendConfig(name="vertex", type="vertex", base_url="http://127.0.0.1:9",
                                          options={"project": "p"}))
    with pytest.raises(ConfigurationError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        await backend.generate(Request(model="gemini-2.5-flash", messages=[Message.user("Hi")]))
    await backend.aclose()


async def test_vertex_ids_work_through_the_facade_and_are_priced(fake: VertexFake, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setenv("VERTEX_BASE_URL", fake.url)
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", fake.location)
    fake.gemini.reply("priced", usage={"promptTokenCount": 1000, "candidatesTokenCount": 100,
                                       "totalTokenCount": 1100})
    llm = LLM(config={}, environ=dict(os.environ))
    response = await llm.generate("vertex/gemini-2.5-flash", "Hi")
    await llm.aclose()
    assert response.text == "priced"
    assert response.cost_usd == pytest.approx((1000 * 0.3 + 100 * 2.5) / 1e6)


def test_the_endpoint_follows_the_location() -> None:
    assert VertexBackend(BackendConfig(name="v", type="vertex", options={"location": "europe-west4"})).endpoint \
        == "https://europe-west4-aiplatform.googleapis.com"
    assert VertexBackend(BackendConfig(name="v", type="vertex", options={"location": "global"})).endpoint \
        == "https://aiplatform.googleapis.com"


async def test_tokens_are_counted_by_vertex_for_both_publishers(fake: VertexFake) -> None:
    fake.anthropic.token_count = 42
    backend = backend_for(fake)
    request = Request(model="claude-sonnet-4-5@20250929", messages=[Message.system("Be brief."), Message.user("Hi")])
    assert await backend.count_tokens(request) == 42
    sent = fake.vertex_requests[-1]
    assert sent.path.endswith("/publishers/anthropic/models/count-tokens:rawPredict")
    assert sent.json["model"] == "claude-sonnet-4-5@20250929" and "max_tokens" not in sent.json
    gemini = await backend.count_tokens(Request(model="gemini-2.5-flash", messages=[Message.user("one two three")]))
    await backend.aclose()
    assert gemini == 4  # the fake's tokenizer: a token per word, plus one per part
    assert fake.vertex_requests[-1].path.endswith("/publishers/google/models/gemini-2.5-flash:countTokens")
    assert set(fake.vertex_requests[-1].json) == {"contents"}
