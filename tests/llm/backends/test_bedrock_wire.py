"""Bedrock's wire format checked against AWS's own definition of it.

Every body :func:`build_request` makes is validated against the ``Converse`` input shape of the
service model botocore ships (the model the official SDKs are generated from). The loopback fake is
checked the other way round: the official SDK (a botocore client) signs requests to it and parses
its answers, the binary event stream included, so the fake speaks what AWS speaks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session
import pydantic
import pytest
from botocore.validate import ParamValidator

from agentadapter.llm.backends.bedrock_mapping import (
    build_request,
    finish_reason,
    model_family,
    parse_response,
    reasoning_fields,
    usage_from_wire,
)
from agentadapter.llm.catalog import DEFAULTS, lookup
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import (
    CacheHints,
    FilePart,
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool
from fakes.bedrock_server import BedrockFake

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
WEATHER = Tool("get_weather", "The weather in a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")


class City(pydantic.BaseModel):
    name: str
    population: int


def assert_valid_converse(body: dict[str, Any], model: str = CLAUDE) -> None:
    report = ParamValidator().validate({"modelId": model, **body}, SERVICE.operation_model("Converse").input_shape)
    assert not report.has_errors(), report.generate_report()


def body_for(request: Request) -> dict[str, Any]:
    return build_request(request, capabilities=lookup(f"bedrock/{request.model}"), provider="bedrock").body


TOOL_HISTORY = [
    Message.user("Weather in Oslo and Rome?"),
    Message.assistant([ReasoningPart("Two cities.", signature="sig", provider="bedrock"),
                       ToolCallPart("t1", "get_weather", {"city": "Oslo"}),
                       ToolCallPart("t2", "get_weather", {"city": "Rome"})]),
    Message("tool", [ToolResultPart("t1", "get_weather", "rain")]),
    Message("tool", [ToolResultPart("t2", "get_weather", "no data", is_error=True)]),
]


@pytest.mark.parametrize("request_", [
    Request(model=CLAUDE, messages=[Message.system("Be brief."), Message.user("Hi")], temperature=0.3, top_p=0.9,
            max_tokens=200, stop=["END"], metadata={"user": "u-1"}),
    Request(model=CLAUDE, messages=[Message.user([TextPart("What is this?"),
                                                  ImagePart(data=b"\x89PNG", media_type="image/png"),
                                                  FilePart(data=b"%PDF-1.7", media_type="application/pdf",
                                                           filename="Q3 report (final).pdf"),
                                                  ImagePart(url="s3://bucket/cat.jpeg")])]),
    Request(model=CLAUDE, messages=TOOL_HISTORY, tools=[WEATHER], tool_choice="get_weather"),
    Request(model=CLAUDE, messages=TOOL_HISTORY, tools=[WEATHER], tool_choice="none"),
    Request(model=CLAUDE, messages=[Message.user("A city?")], output=OutputSchema.of(City)),
    Request(model=CLAUDE, messages=[Message.user("A number?")],
            output=OutputSchema("answer", {"type": "integer"}), reasoning_effort="high"),
    Request(model=CLAUDE, messages=[Message.system("x " * 3000), Message.user("Hi")], cache=CacheHints()),
    Request(model="amazon.nova-pro-v1:0", messages=[Message.user("Hi")], reasoning_effort="low"),
    Request(model="openai.gpt-oss-120b-1:0", messages=[Message.user("Hi")], reasoning_effort="medium",
            extra_body={"additionalModelRequestFields": {"top_k": 5}, "performanceConfig": {"latency": "optimized"}}),
], ids=["settings", "media", "tools-named-choice", "tools-none-with-history", "output", "output-thinking",
        "cache-point", "nova-reasoning", "gpt-oss-extra-body"])
def test_every_body_matches_the_converse_input_shape(request_: Request) -> None:
    assert_valid_converse(body_for(request_), request_.model)


def test_the_count_tokens_body_matches_its_input_shape() -> None:
    body = body_for(Request(model=CLAUDE, messages=TOOL_HISTORY, tools=[WEATHER]))
    converse = {key: body[key] for key in ("messages", "system", "toolConfig") if key in body}
    report = ParamValidator().validate({"modelId": CLAUDE, "input": {"converse": converse}},
                                       SERVICE.operation_model("CountTokens").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_what_the_bodies_say() -> None:
    named = body_for(Request(model=CLAUDE, messages=TOOL_HISTORY, tools=[WEATHER], tool_choice="get_weather"))
    assert named["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    user_turn = named["messages"][2]["content"]  # both tool results in one user turn, in order
    assert [b["toolResult"]["status"] for b in user_turn] == ["success", "error"]
    assert named["messages"][1]["content"][0] == {"reasoningContent": {"reasoningText": {"text": "Two cities.",
                                                                                         "signature": "sig"}}}
    none = body_for(Request(model=CLAUDE, messages=[Message.user("Hi")], tools=[WEATHER], tool_choice="none"))
    assert "toolConfig" not in none
    output = body_for(Request(model=CLAUDE, messages=[Message.user("A city?")], output=OutputSchema.of(City)))
    assert output["toolConfig"]["toolChoice"] == {"tool": {"name": "City"}}
    thinking = body_for(Request(model=CLAUDE, messages=[Message.user("n?")], reasoning_effort="high",
                                output=OutputSchema("answer", {"type": "integer"})))
    assert "toolChoice" not in thinking["toolConfig"]  # Claude refuses forced tools while thinking
    assert thinking["system"][-1]["text"].startswith("Give your final answer by calling the answer tool")
    assert thinking["inferenceConfig"]["maxTokens"] > 16384
    cached = body_for(Request(model=CLAUDE, messages=[Message.system("x " * 3000), Message.user("Hi")]))
    assert cached["system"][-1] == {"cachePoint": {"type": "default"}}
    gpt_oss = body_for(Request(model="openai.gpt-oss-120b-1:0", messages=[Message.user("Hi")],
                               reasoning_effort="medium", extra_body={"additionalModelRequestFields": {"top_k": 5}}))
    assert gpt_oss["additionalModelRequestFields"] == {"reasoning_effort": "medium", "top_k": 5}
    media = body_for(Request(model=CLAUDE, messages=[Message.user([
        TextPart("x"), FilePart(data=b"a,b", media_type="text/csv", filename="data.v2.csv")])]))
    assert media["messages"][0]["content"][1]["document"]["name"] == "data v2"


@pytest.mark.parametrize(("message", "match"), [
    (Message("system", [ImagePart(data=b"x", media_type="image/png")]), "system prompt takes text only"),
    (Message.user([ImagePart(data=b"x", media_type="image/tiff")]), "png, jpeg, gif or webp"),
    (Message.user([FilePart(data=b"x", media_type="application/zip")]), "Bedrock documents are"),
])
def test_what_converse_cannot_carry_is_refused_clearly(message: Message, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        body_for(Request(model=CLAUDE, messages=[message, Message.user("Hi")]))


def test_requests_converse_would_refuse_fail_before_sending() -> None:
    with pytest.raises(InvalidRequestError, match="no user or assistant message"):
        body_for(Request(model=CLAUDE, messages=[Message.system("only a system prompt")]))
    with pytest.raises(InvalidRequestError, match="needs tools"):
        body_for(Request(model=CLAUDE, messages=[Message.user("Hi")], tool_choice="required"))
    with pytest.raises(InvalidRequestError, match="not one of the request's tools"):
        body_for(Request(model=CLAUDE, messages=[Message.user("Hi")], tools=[WEATHER], tool_choice="other"))
    with pytest.raises(InvalidRequestError, match="no reasoning setting"):
        reasoning_fields(Request(model="meta.llama3-3-70b-instruct-v1:0", messages=[], reasoning_effort="high"),
                         "bedrock")
    with pytest.raises(InvalidRequestError, match="not known"):
        reasoning_fields(Request(model=CLAUDE, messages=[], reasoning_effort="extreme"), "bedrock")
    assert reasoning_fields(Request(model="amazon.nova-2-lite-v1:0", messages=[], reasoning_effort="none"),
                            "bedrock") == {"reasoningConfig": {"type": "disabled"}}


def test_answers_read_back() -> None:
    wire = build_request(Request(model=CLAUDE, messages=[Message.user("A city?")], output=OutputSchema.of(City)),
                         capabilities=DEFAULTS, provider="bedrock")
    response = parse_response({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"redactedContent": "b64data"}},
            {"toolUse": {"toolUseId": "t", "name": "City", "input": {"name": "Oslo", "population": 700000}}},
            {"image": {"format": "png", "source": {"bytes": "aGk="}}},
        ]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 5, "outputTokens": 7},
        "additionalModelResponseFields": {"stop_sequence": None}, "metrics": {"latencyMs": 40},
    }, provider="bedrock", model=CLAUDE, wire=wire, response_id="r1")
    assert response.text == '{"name": "Oslo", "population": 700000}'
    assert response.finish_reason == "stop"  # the only call was the output tool
    assert isinstance(response.parts[0], ReasoningPart) and response.parts[0].redacted_data == "b64data"
    assert response.provider_details is not None and response.provider_details["unsupported_blocks"]
    assert response.provider_details["bedrock_latency_ms"] == 40
    assert finish_reason("guardrail_intervened", has_tool_calls=False) == "content_filter"
    assert finish_reason("something_new", has_tool_calls=False) == "stop"
    assert usage_from_wire(None).input_tokens == 0
    assert model_family("anthropic.claude-v2") == "anthropic"


# ----------------------------------------------------------------- the official SDK against the fake


@pytest.fixture
async def fake() -> AsyncIterator[BedrockFake]:
    async with BedrockFake() as server:
        yield server


def sdk_client(fake: BedrockFake) -> Any:
    session = botocore.session.get_session()
    return session.create_client(
        "bedrock-runtime", region_name=fake.region, endpoint_url=fake.url,
        aws_access_key_id=fake.access_key, aws_secret_access_key=fake.secret_key,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


async def test_the_official_sdk_reads_the_fakes_answers(fake: BedrockFake) -> None:

    client = sdk_client(fake)
    fake.reply("Hello from the fake", usage={"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokens": 2})
    answer = await asyncio.to_thread(client.converse, modelId=CLAUDE,
                                     messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert answer["output"]["message"]["content"] == [{"text": "Hello from the fake"}]
    assert answer["usage"]["cacheReadInputTokens"] == 2 and answer["stopReason"] == "end_turn"
    # The SDK signed it, and the fake checked that signature as AWS would.
    assert fake.signatures[-1].service == "bedrock"

    fake.reply("Streamed", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}, "toolUseId": "t9"}])

    def stream() -> list[dict[str, Any]]:
        events = client.converse_stream(
            modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
            toolConfig={"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER.parameters}}}]},
        )["stream"]
        return list(events)

    events = await asyncio.to_thread(stream)
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"] == {"toolUseId": "t9", "name": "get_weather"}
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text == "Streamed"

    fake.exception_mid_stream("throttlingException", after_events=1)

    def throttled() -> None:
        for _ in client.converse_stream(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "Hi"}]}])[
                "stream"]:
            pass

    with pytest.raises(botocore.exceptions.EventStreamError, match="throttlingException"):
        await asyncio.to_thread(throttled)
    fake.error(403, "AccessDeniedException", "You don't have access to the model with the specified model ID.")
    with pytest.raises(client.exceptions.AccessDeniedException):
        await asyncio.to_thread(client.converse, modelId=CLAUDE,
                                messages=[{"role": "user", "content": [{"text": "Hi"}]}])
