"""The neutral message model: coercion from OpenAI-style dicts, parts, usage, stream accumulation."""

from __future__ import annotations

import base64

import pytest

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import (
    FilePart,
    ImagePart,
    Message,
    ReasoningPart,
    Response,
    StreamAccumulator,
    StreamEvent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
    coerce_messages,
    parse_tool_arguments,
    part_from_dict,
    part_to_dict,
    response_events,
    tool_names_by_call_id,
)

PNG = b"\x89PNG\r\n\x1a\nfake"


def test_a_string_is_one_user_message():
    (message,) = coerce_messages("hi")
    assert message.role == "user" and message.text == "hi"


def test_openai_style_conversation_round_trip():
    messages = coerce_messages([
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "cat"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        Message.user("thanks"),
        "and a plain string",
    ])
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "user", "user"]
    image_url, inline = messages[1].parts[1], messages[1].parts[2]
    assert isinstance(image_url, ImagePart) and image_url.url == "https://x/cat.png" and image_url.detail == "low"
    assert isinstance(inline, ImagePart) and inline.data == PNG and inline.media_type == "image/png"
    assert messages[2].tool_calls[0].arguments == {"q": "cat"}
    result = messages[3].parts[0]
    assert isinstance(result, ToolResultPart) and result.call_id == "call_1" and result.content == "a cat"
    assert tool_names_by_call_id(messages) == {"call_1": "lookup"}


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ([{"role": "wizard", "content": "x"}], "role 'wizard'"),
        ([{"role": "tool", "content": "x"}], "tool_call_id"),
        ([{"role": "user", "content": [{"type": "audio"}]}], "unsupported content part type 'audio'"),
        ([{"role": "user", "content": 5}], "content must be a string"),
        ([42], "message 0 is a int"),
        ([], "no messages"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "image_url needs a url"),
    ],
)
def test_malformed_messages_say_what_to_do(bad, needle):
    with pytest.raises(InvalidRequestError, match=needle):
        coerce_messages(bad)


def test_image_part_validation():
    with pytest.raises(InvalidRequestError, match="exactly one of url= or data="):
        ImagePart()
    with pytest.raises(InvalidRequestError, match="media_type"):
        ImagePart(data=PNG)
    with pytest.raises(InvalidRequestError, match="base64"):
        ImagePart(url="data:image/png,notbase64")
    image = ImagePart(data=PNG, media_type="image/png")
    assert image.data_url.startswith("data:image/png;base64,")
    assert ImagePart(url="https://x").data_url == "https://x"
    with pytest.raises(InvalidRequestError):
        _ = ImagePart(url="https://x").base64


def test_image_from_path(tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    assert ImagePart.from_path(path).media_type == "image/png"
    with pytest.raises(InvalidRequestError, match="cannot read image"):
        ImagePart.from_path(tmp_path / "missing.png")
    odd = tmp_path / "cat.unknown"
    odd.write_bytes(PNG)
    with pytest.raises(InvalidRequestError, match="media_type"):
        ImagePart.from_path(odd)


def test_parts_serialize_and_back():
    parts = [
        TextPart("hi"),
        ImagePart(data=PNG, media_type="image/png"),
        FilePart(data=b"%PDF", media_type="application/pdf", filename="a.pdf"),
        ToolCallPart("c1", "f", {"x": 1}),
        ToolResultPart("c1", "f", "done", is_error=True),
        ReasoningPart("hmm", signature="sig", provider="anthropic"),
    ]
    for part in parts:
        assert part_from_dict(part_to_dict(part)) == part
    message = Message("assistant", parts[:1])
    assert coerce_messages([message.to_dict()])[0] == message
    with pytest.raises(InvalidRequestError, match="unknown part kind"):
        part_from_dict({"kind": "video"})
    with pytest.raises(InvalidRequestError, match="malformed text part"):
        part_from_dict({"kind": "text", "bogus": 1})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ({"a": 1}, {"a": 1}),
        ("", {}),
        (None, {}),
        ("{broken", {"_raw_arguments": "{broken"}),
        ("[1, 2]", {"_raw_arguments": "[1, 2]"}),
    ],
)
def test_tool_arguments_are_always_a_dict(raw, expected):
    assert parse_tool_arguments(raw, "f") == expected


def test_usage_adds_up():
    total = Usage(10, 5, 2, 1, 3) + Usage(1, 1)
    assert total.to_dict() == {
        "input_tokens": 11, "output_tokens": 6, "cached_input_tokens": 2, "cache_write_tokens": 1,
        "reasoning_tokens": 3, "total_tokens": 17,
    }


def test_accumulated_stream_equals_the_response():
    response = Response(
        id="r1", provider="anthropic", model="m", finish_reason="tool_calls", usage=Usage(10, 4),
        parts=[
            ReasoningPart("think", signature="s", provider="anthropic"),
            TextPart("hello big world"),
            ToolCallPart("c1", "f", {"x": [1, 2]}),
        ],
    )
    accumulator = StreamAccumulator("anthropic", "m", "r1")
    for event in response_events(response):
        accumulator.add(event)
    finish = accumulator.finish("tool_calls")
    assert finish.response == response
    assert finish.response.message.role == "assistant"


def test_accumulator_separates_blocks_by_index():
    accumulator = StreamAccumulator("p", "m")
    for event in [
        StreamEvent("text", text="a", index=0),
        StreamEvent("text", text="b", index=0),
        StreamEvent("text", text="c", index=1),
        StreamEvent("reasoning", text="r", index=2),
        StreamEvent("reasoning", signature="sig", index=2),
        StreamEvent("tool_call_delta", arguments_delta="{"),
    ]:
        accumulator.add(event)
    accumulator.add_part(ReasoningPart(redacted_data="xyz"))
    response = accumulator.response()
    assert [p.kind for p in response.parts] == ["text", "text", "reasoning", "reasoning"]
    assert response.text == "abc" and response.reasoning == "r"
    assert response.parts[2].signature == "sig"
    assert response.finish_reason == "stop"


def test_response_to_dict_is_json_ready():
    import json

    response = Response(id="r", provider="p", model="m", parts=[TextPart("hi"), ToolCallPart("c", "f", {})])
    data = json.loads(json.dumps(response.to_dict()))
    assert data["text"] == "hi" and data["tool_calls"] == [{"id": "c", "name": "f", "arguments": {}}]


def test_unknown_role_is_refused():
    with pytest.raises(InvalidRequestError):
        Message("robot", [])  # type: ignore[arg-type]
