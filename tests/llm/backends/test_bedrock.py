"""BedrockBackend against a loopback Bedrock runtime that verifies SigV4 signatures and speaks the event stream."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from agentadapter import LLM
from agentadapter.llm.backends.base import BackendConfig, backend_class
from agentadapter.llm.backends.bedrock import BedrockBackend
from agentadapter.llm.backends.bedrock_mapping import model_family
from agentadapter.llm.errors import (
    AuthenticationError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from agentadapter.llm.messages import ImagePart, Message, ReasoningPart, Request, StreamAccumulator, TextPart
from agentadapter.llm.tools import Tool
from fakes.bedrock_server import BedrockFake, encode_event

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
WEATHER = Tool("get_weather", "The weather in a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_BEARER_TOKEN_BEDROCK",
             "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_EC2_METADATA_DISABLED")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AWS settings of the machine leak in; instance metadata is never asked."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@pytest.fixture
async def fake() -> AsyncIterator[BedrockFake]:
    async with BedrockFake() as server:
        yield server


def backend_for(fake: BedrockFake, **options: Any) -> BedrockBackend:
    options = {"region": "us-east-1", "aws_access_key_id": fake.access_key,
               "aws_secret_access_key": fake.secret_key, **options}
    return BedrockBackend(BackendConfig(name="bedrock", type="bedrock", base_url=fake.url, options=options))


def request(*messages: Message, **kwargs: Any) -> Request:
    return Request(model=MODEL, messages=list(messages) or [Message.user("Hello")], **kwargs)


async def test_generate_is_signed_and_read_back(fake: BedrockFake) -> None:
    fake.reply("Hi there", usage={"inputTokens": 12, "outputTokens": 3, "cacheReadInputTokens": 100,
                                  "cacheWriteInputTokens": 20})
    backend = backend_for(fake)
    response = await backend.generate(request(Message.system("Be brief."), Message.user("Hello")))
    await backend.aclose()
    assert response.text == "Hi there"
    assert response.finish_reason == "stop"
    assert response.id.startswith("req-fake-")
    # Converse counts cache reads and writes outside inputTokens; our Usage counts them inside.
    assert (response.usage.input_tokens, response.usage.cached_input_tokens, response.usage.cache_write_tokens,
            response.usage.output_tokens) == (132, 100, 20, 3)
    signed = fake.signatures[-1]
    assert (signed.access_key, signed.region, signed.service) == ("AKIDFAKEEXAMPLE", "us-east-1", "bedrock")
    assert {"host", "x-amz-date", "content-type"} <= set(signed.signed_headers)
    body = fake.requests[-1].json
    assert body["system"] == [{"text": "Be brief."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Hello"}]}]
    # The model id with its ':' travels as one escaped path segment, and the signature covers it.
    assert fake.models[-1] == MODEL
    assert "%3A" in fake.requests[-1].path or ":" in fake.requests[-1].path


async def test_a_wrong_secret_fails_the_signature_check_as_aws_would(fake: BedrockFake) -> None:
    backend = backend_for(fake, aws_secret_access_key="not-the-secret")
    with pytest.raises(AuthenticationError) as caught:
        await backend.generate(request())
    await backend.aclose()
    assert caught.value.status == 403
    assert caught.value.code == "InvalidSignatureException"
    assert "AWS credentials" in str(caught.value)


async def test_credentials_come_from_the_environment_with_a_session_token(
        fake: BedrockFake, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.session_token = "session-token-from-sts"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", fake.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", str(fake.secret_key))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-from-sts")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    backend = BedrockBackend(BackendConfig(name="bedrock", type="bedrock", base_url=fake.url))
    assert backend.region == "us-east-1"
    response = await backend.generate(request())
    await backend.aclose()
    assert response.text == "Hello"
    assert fake.requests[-1].headers["x-amz-security-token"] == "session-token-from-sts"


async def test_a_shared_profile_gives_credentials_and_region(
        fake: BedrockFake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake.region = "eu-west-3"
    (tmp_path / "credentials").write_text(
        f"[team]\naws_access_key_id = {fake.access_key}\naws_secret_access_key = {fake.secret_key}\n")
    (tmp_path / "config").write_text("[profile team]\nregion = eu-west-3\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "team")
    backend = BedrockBackend(BackendConfig(name="bedrock", type="bedrock", base_url=fake.url))
    assert backend.region == "eu-west-3"
    assert (await backend.generate(request())).text == "Hello"
    await backend.aclose()
    assert fake.signatures[-1].region == "eu-west-3"


async def test_the_regional_endpoint_is_built_from_the_region() -> None:
    backend = BedrockBackend(BackendConfig(name="bedrock", type="bedrock", options={
        "region": "ap-northeast-1", "aws_access_key_id": "AKID", "aws_secret_access_key": "x"}))
    assert backend.endpoint == "https://bedrock-runtime.ap-northeast-1.amazonaws.com"
    await backend.aclose()


async def test_no_credentials_is_a_configuration_error_naming_the_ways_to_give_them(fake: BedrockFake) -> None:
    backend = BedrockBackend(BackendConfig(name="bedrock", type="bedrock", base_url=fake.url,
                                           options={"region": "us-east-1"}))
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID"):
        await backend.generate(request())
    await backend.aclose()
    assert not fake.requests


async def test_no_region_is_said_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = BedrockBackend(BackendConfig(name="bedrock", type="bedrock"))
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        await backend.generate(request())
    await backend.aclose()


async def test_a_bedrock_api_key_is_sent_as_a_bearer_token(fake: BedrockFake) -> None:
    fake.bearer = "bedrock-api-key-abc"
    backend = BedrockBackend(BackendConfig(name="bedrock", type="bedrock", base_url=fake.url,
                                           api_key="bedrock-api-key-abc", options={"region": "us-east-1"}))
    assert (await backend.generate(request())).text == "Hello"
    await backend.aclose()
    assert "x-amz-date" not in fake.requests[-1].headers


async def test_tools_round_trip(fake: BedrockFake) -> None:
    fake.reply(tool_uses=[{"name": "get_weather", "input": {"city": "Paris"}, "toolUseId": "tooluse_1"}])
    backend = backend_for(fake)
    first = await backend.generate(request(Message.user("Weather in Paris?"), tools=[WEATHER],
                                           tool_choice="required"))
    assert first.finish_reason == "tool_calls"
    call = first.tool_calls[0]
    assert (call.id, call.name, call.arguments) == ("tooluse_1", "get_weather", {"city": "Paris"})
    sent = fake.requests[-1].json
    assert sent["toolConfig"]["toolChoice"] == {"any": {}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"] == WEATHER.parameters
    fake.reply("It is sunny.")
    second = await backend.generate(request(Message.user("Weather in Paris?"), first.message,
                                            Message.tool("tooluse_1", "get_weather", "sunny, 21C"), tools=[WEATHER]))
    await backend.aclose()
    assert second.text == "It is sunny."
    result = fake.requests[-1].json["messages"][-1]["content"][0]["toolResult"]
    assert result == {"toolUseId": "tooluse_1", "content": [{"text": "sunny, 21C"}], "status": "success"}


async def test_images_go_inline_and_web_urls_are_refused(fake: BedrockFake) -> None:
    backend = backend_for(fake)
    image = ImagePart(data=b"\x89PNG fake", media_type="image/png")
    await backend.generate(request(Message.user([TextPart("What is this?"), image])))
    block = fake.requests[-1].json["messages"][0]["content"][1]
    assert block["image"]["format"] == "png"
    assert block["image"]["source"]["bytes"] == "iVBORyBmYWtl"
    with pytest.raises(InvalidRequestError, match="does not fetch web URLs"):
        await backend.generate(request(Message.user([ImagePart(url="https://example.com/a.png")])))
    await backend.aclose()


async def test_reasoning_is_asked_for_and_replayed_to_bedrock_only(fake: BedrockFake) -> None:
    fake.reply("42", reasoning="Let me think.", signature="sig-1")
    backend = backend_for(fake)
    response = await backend.generate(request(Message.user("Answer?"), reasoning_effort="medium", max_tokens=1000))
    sent = fake.requests[-1].json
    assert sent["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 4096}}
    assert sent["inferenceConfig"]["maxTokens"] > 4096
    reasoning = response.parts[0]
    assert isinstance(reasoning, ReasoningPart)
    assert (reasoning.text, reasoning.signature, reasoning.provider) == ("Let me think.", "sig-1", "bedrock")
    history = [Message.user("Answer?"), response.message, Message.user("And again?")]
    history.insert(1, Message.assistant([ReasoningPart("foreign", signature="x", provider="anthropic")]))
    await backend.generate(request(*history))
    await backend.aclose()
    assistant = fake.requests[-1].json["messages"][1]["content"]
    assert assistant[0] == {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "sig-1"}}}
    assert all("foreign" not in str(block) for block in assistant)


async def test_stream_decodes_the_event_stream_into_the_generate_response(fake: BedrockFake) -> None:
    backend = backend_for(fake)
    fake.reply("Streaming works fine", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}}],
               usage={"inputTokens": 7, "outputTokens": 9})
    events = [event async for event in backend.stream(request(tools=[WEATHER]))]
    kinds = [e.kind for e in events]
    assert kinds.count("text") > 2 and "tool_call_delta" in kinds and kinds[-1] == "finish"
    streamed = events[-1].response
    assert streamed is not None
    fake.reply("Streaming works fine", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}}],
               usage={"inputTokens": 7, "outputTokens": 9})
    whole = await backend.generate(request(tools=[WEATHER]))
    await backend.aclose()
    assert streamed.text == whole.text == "Streaming works fine"
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert streamed.usage == whole.usage
    assert streamed.finish_reason == whole.finish_reason == "tool_calls"
    assert fake.requests[-2].headers["accept"] == "application/vnd.amazon.eventstream"


async def test_an_exception_event_mid_stream_is_a_rate_limit(fake: BedrockFake) -> None:
    fake.exception_mid_stream("throttlingException", after_events=2)
    backend = backend_for(fake)
    with pytest.raises(RateLimitError, match="throttlingException"):
        async for _ in backend.stream(request()):
            pass
    await backend.aclose()


async def test_a_stream_cut_before_message_stop_is_interrupted(fake: BedrockFake) -> None:
    original = fake._frames
    fake._frames = lambda scripted: original(scripted)[:-2]  # type: ignore[method-assign]
    backend = backend_for(fake)
    with pytest.raises(StreamInterruptedError, match="messageStop"):
        async for _ in backend.stream(request()):
            pass
    await backend.aclose()


@pytest.mark.parametrize(("status", "error_type", "message", "expected"), [
    (400, "ThrottlingException", "Too many tokens, please wait before trying again.", RateLimitError),
    (429, "ThrottlingException", "Rate exceeded", RateLimitError),
    (429, "ServiceQuotaExceededException", "quota", RateLimitError),
    (403, "AccessDeniedException", "You don't have access to the model with the specified model ID.",
     PermissionDeniedError),
    (403, "ExpiredTokenException", "The security token included in the request is expired", AuthenticationError),
    (404, "ResourceNotFoundException", "Model not found", NotFoundError),
    (400, "ValidationException", "Input is too long for requested model.", ContextWindowExceededError),
    (503, "ServiceUnavailableException", "Service unavailable", ServerError),
    (500, "InternalServerException", "internal", ServerError),
])
async def test_errors_are_mapped_by_aws_error_type(fake: BedrockFake, status: int, error_type: str,
                                                   message: str, expected: type[Exception]) -> None:
    fake.error(status, error_type, message)
    backend = backend_for(fake)
    with pytest.raises(expected) as caught:
        await backend.generate(request())
    await backend.aclose()
    assert getattr(caught.value, "status", None) == status
    assert getattr(caught.value, "request_id", None) == "req-fake-error"
    assert error_type in str(caught.value)


async def test_bedrock_ids_work_through_the_facade(fake: BedrockFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", fake.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", str(fake.secret_key))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
    fake.reply("from the facade", usage={"inputTokens": 1000, "outputTokens": 100})
    llm = LLM(config={}, environ=dict(os.environ))
    response = await llm.generate(f"bedrock/{MODEL}", "Hi")
    await llm.aclose()
    assert response.text == "from the facade"
    assert response.provider == "bedrock"
    assert response.cost_usd is not None and response.cost_usd > 0
    assert backend_class("bedrock") is BedrockBackend


def test_model_family_reads_profiles_and_arns() -> None:
    assert model_family("us.anthropic.claude-3-7-sonnet-20250219-v1:0") == "anthropic"
    assert model_family("global.anthropic.claude-sonnet-4-5-20250929-v1:0") == "anthropic"
    assert model_family("amazon.nova-pro-v1:0") == "amazon"
    assert model_family("arn:aws:bedrock:us-east-1:123:inference-profile/us.meta.llama3-3-70b-instruct-v1:0") == "meta"


def test_the_fake_frames_read_back_with_botocore() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(encode_event({":event-type": "messageStart", ":message-type": "event"}, b'{"role":"assistant"}'))
    [message] = list(buffer)
    assert message.headers[":event-type"] == "messageStart"
    assert message.payload == b'{"role":"assistant"}'


async def test_accumulating_events_by_hand_gives_the_same_response(fake: BedrockFake) -> None:
    backend = backend_for(fake)
    accumulator = StreamAccumulator("bedrock", MODEL)
    final = None
    async for event in backend.stream(request()):
        if event.kind == "finish":
            final = event.response
        else:
            accumulator.add(event)
    await backend.aclose()
    assert final is not None and accumulator.response().text == final.text == "Hello"


_ASSUME_ROLE_XML = """<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/bedrock-caller/agentadapter</Arn>
      <AssumedRoleId>AROAFAKEROLEID:agentadapter</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAFAKEROLEKEY</AccessKeyId>
      <SecretAccessKey>role-secret</SecretAccessKey>
      <SessionToken>role-session-token</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>4f0c6b1e-0000-4000-8000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""


async def test_a_profile_that_assumes_a_role_signs_with_the_roles_session(
        fake: BedrockFake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore's assume-role provider calls STS (here the fake's /, via AWS_ENDPOINT_URL_STS) with the
    source profile's keys; Bedrock calls are then signed with the temporary keys and session token."""
    from aiohttp import web

    sts_calls: list[dict[str, str]] = []

    async def assume_role(request: web.Request, recorded: Any) -> web.StreamResponse:
        from urllib.parse import parse_qsl

        form = dict(parse_qsl(recorded.body.decode()))
        sts_calls.append({**form, "authorization": recorded.headers.get("authorization", "")})
        return web.Response(text=_ASSUME_ROLE_XML, content_type="text/xml")

    fake.route("POST", "/", assume_role)
    fake.access_key, fake.secret_key, fake.session_token = "ASIAFAKEROLEKEY", "role-secret", "role-session-token"
    (tmp_path / "credentials").write_text("[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n")
    (tmp_path / "config").write_text(
        "[profile caller]\nrole_arn = arn:aws:iam::123456789012:role/bedrock-caller\nsource_profile = base\n"
        "role_session_name = agentadapter\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.url)
    backend = BedrockBackend(BackendConfig(name="bedrock", type="bedrock", base_url=fake.url,
                                           options={"profile": "caller"}))
    assert (await backend.generate(request())).text == "Hello"
    assert (await backend.generate(request())).text == "Hello"
    await backend.aclose()
    [call] = sts_calls  # the role's session is reused while valid
    assert call["Action"] == "AssumeRole" and call["RoleArn"] == "arn:aws:iam::123456789012:role/bedrock-caller"
    assert "Credential=AKIDBASE/" in call["authorization"]  # STS was asked with the source profile's keys
    assert fake.requests[-1].headers["x-amz-security-token"] == "role-session-token"
    assert fake.signatures[-1].access_key == "ASIAFAKEROLEKEY"


async def test_tokens_are_counted_and_models_listed_by_bedrock(fake: BedrockFake) -> None:
    fake.token_count = 17
    backend = backend_for(fake, control_url=fake.url)
    assert await backend.count_tokens(request(Message.system("Be brief."), Message.user("Hello there"))) == 17
    sent = fake.requests[-1]
    assert sent.path.endswith("/count-tokens") and set(sent.json["input"]["converse"]) == {"messages", "system"}
    models = await backend.list_models()
    await backend.aclose()
    # On-demand foundation models and every page of inference profiles; a profile-only model is not callable by id.
    assert models == ["amazon.nova-pro-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0",
                      "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                      "us.meta.llama3-3-70b-instruct-v1:0"]
    assert all(s.service == "bedrock" for s in fake.signatures)  # GETs with a query string are signed too


async def test_a_config_file_backend_with_keys_and_region(fake: BedrockFake) -> None:
    from agentadapter.observability.redact import redact_text

    llm = LLM(config={"backends": {"bedrock": {
        "base_url": fake.url, "region": "us-east-1", "aws_access_key_id": fake.access_key,
        "aws_secret_access_key": fake.secret_key}}}, environ={})
    assert (await llm.generate(f"bedrock/{MODEL}", "from the config")).text == "from the config"
    await llm.aclose()
    assert str(fake.secret_key) not in redact_text(f"oops: {fake.secret_key}")


async def test_streamed_reasoning_keeps_its_signature(fake: BedrockFake) -> None:
    fake.reply("42", reasoning="Think it through.", signature="sig-stream")
    backend = backend_for(fake)
    events = [e async for e in backend.stream(request(reasoning_effort="low", max_tokens=2000))]
    await backend.aclose()
    final = events[-1].response
    assert final is not None and final.text == "42"
    reasoning = final.parts[0]
    assert isinstance(reasoning, ReasoningPart)
    assert (reasoning.text, reasoning.signature, reasoning.provider) == ("Think it through.", "sig-stream", "bedrock")
    assert any(e.kind == "reasoning" for e in events)
