"""Tool calls parsed from local models' text, one test per chat-template format, and the stream filter."""

from __future__ import annotations

import json
import random

import pytest

from agentadapter.llm.runners.tool_calls import MARKERS, ToolCallStreamFilter, parse_tool_calls

TOOLS = {"get_weather", "get_time"}


def test_hermes_and_qwen_tool_call_tags():
    text = (
        "Let me look that up.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": "{\\"zone\\": \\"CET\\"}"}\n</tool_call>'
    )
    parsed = parse_tool_calls(text, TOOLS)
    assert parsed.format == "hermes" and parsed.text == "Let me look that up."
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]
    assert all(c.id.startswith("call_") for c in parsed.tool_calls)
    assert len({c.id for c in parsed.tool_calls}) == 2
    # A block cut off by max_tokens still parses when its JSON is whole; a broken one stays text.
    assert parse_tool_calls('<tool_call>{"name": "get_time", "arguments": {}}', TOOLS).tool_calls[0].name == "get_time"
    broken = '<tool_call>{"name": "get_time", "argu'
    assert parse_tool_calls(broken, TOOLS).text == broken and not parse_tool_calls(broken, TOOLS).tool_calls


def test_mistral_tool_calls_in_both_generations_of_the_format():
    v3 = 'Sure.[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "a1B2c3D4e"}]'
    parsed = parse_tool_calls(v3, TOOLS)
    assert parsed.format == "mistral" and parsed.text == "Sure."
    assert [(c.id, c.name, c.arguments) for c in parsed.tool_calls] == [("a1B2c3D4e", "get_weather", {"city": "Oslo"})]
    v11 = '[TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}[TOOL_CALLS]get_time[CALL_ID]x9[ARGS]{}'
    calls = parse_tool_calls(v11, TOOLS).tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Rome"}), ("get_time", {})]
    assert calls[1].id == "x9"
    assert parse_tool_calls("[TOOL_CALLS] not json", TOOLS).tool_calls == []


def test_llama3_json_tool_calls():
    parsed = parse_tool_calls('{"name": "get_weather", "parameters": {"city": "Lima"}}', TOOLS)
    assert parsed.format == "llama3" and parsed.text == ""
    assert (parsed.tool_calls[0].name, parsed.tool_calls[0].arguments) == ("get_weather", {"city": "Lima"})
    several = '<|python_tag|>{"name": "get_time", "parameters": {}}; {"name": "get_weather", "parameters": {"city": "Oslo"}}'
    assert [c.name for c in parse_tool_calls(several, TOOLS).tool_calls] == ["get_time", "get_weather"]
    listed = '[{"name": "get_time", "arguments": {}}, {"type": "function", "function": {"name": "get_weather", "arguments": {}}}]'
    assert [c.name for c in parse_tool_calls(listed, TOOLS).tool_calls] == ["get_time", "get_weather"]


@pytest.mark.parametrize("answer", [
    '{"name": "Paris", "parameters": {"population": 2}}',  # names no offered tool: an answer
    '{"name": "get_time"}',  # no arguments key: an answer shaped like a record
    '{"name": "get_time", "parameters": {}} and some prose',
    "It is sunny in Paris.",
])
def test_answers_that_are_not_tool_calls_stay_text(answer):
    parsed = parse_tool_calls(answer, TOOLS)
    assert parsed.tool_calls == [] and parsed.text == answer and parsed.format is None


@pytest.mark.parametrize("output", [
    "Let me check.\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
    "Sure. [TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}]",
    "  {\"name\": \"get_time\", \"parameters\": {}}",
    "<|python_tag|>{\"name\": \"get_time\", \"parameters\": {}}",
    "A plain answer with <tags> and [brackets], not a call.  ",
    "{\"answer\": 42}",
    "Ends with half a marker <tool_c",
])
def test_the_stream_filter_never_shows_text_that_is_not_in_the_answer(output):
    parsed = parse_tool_calls(output, TOOLS)
    for seed in range(20):
        rng = random.Random(seed)
        stream_filter = ToolCallStreamFilter()
        position, shown = 0, ""
        while position < len(output):
            size = rng.randint(1, 6)
            shown += stream_filter.feed(output[position : position + size])
            position += size
        assert shown == stream_filter.emitted
        assert parsed.text.startswith(shown), (shown, parsed.text)
        if not parsed.tool_calls:  # plain text is shown as it comes, save white space and a marker's start
            assert output.rstrip().startswith(shown)
            assert not any(m in shown for m in MARKERS)


def test_tool_call_arguments_that_are_not_an_object_are_kept_visible():
    call = parse_tool_calls('<tool_call>{"name": "get_time", "arguments": "[1, 2"}</tool_call>', TOOLS).tool_calls[0]
    assert call.arguments == {"_raw_arguments": "[1, 2"}
    assert json.loads(json.dumps(call.arguments))
