"""The neutral penalties and JSON mode, as each backend's body spells them (or leaves them out)."""

from __future__ import annotations

from agentadapter.llm.backends import cohere, gemini, openai_chat_mapping, openai_responses
from agentadapter.llm.messages import Message, Request
from agentadapter.llm.output import OutputSchema


def _request(**settings: object) -> Request:
    return Request(model="m", messages=[Message.user("JSON about cats")], **settings)  # type: ignore[arg-type]


JSON_MODE = OutputSchema("json_object", {"type": "object"}, strict=False, json_mode=True)


def test_penalties_per_backend() -> None:
    request = _request(frequency_penalty=0.5, presence_penalty=-1.0)
    chat = openai_chat_mapping.request_body(request, openai_chat_mapping.WireSettings(), stream=False)
    assert (chat["frequency_penalty"], chat["presence_penalty"]) == (0.5, -1.0)
    config = gemini.request_body(request, "gemini")["generationConfig"]
    assert (config["frequencyPenalty"], config["presencePenalty"]) == (0.5, -1.0)
    body = cohere.request_body(request, stream=False)
    assert (body["frequency_penalty"], body["presence_penalty"]) == (0.5, -1.0)
    unset = openai_chat_mapping.request_body(_request(), openai_chat_mapping.WireSettings(), stream=False)
    assert "frequency_penalty" not in unset and "presence_penalty" not in unset


def test_json_mode_stays_json_mode_where_the_api_has_one() -> None:
    request = _request(output=JSON_MODE)
    chat = openai_chat_mapping.request_body(request, openai_chat_mapping.WireSettings(), stream=False)
    assert chat["response_format"] == {"type": "json_object"}
    responses = openai_responses.request_body(request, openai_responses.WireSettings(), "openai", stream=False)
    assert responses["text"] == {"format": {"type": "json_object"}}
    config = gemini.request_body(request, "gemini")["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "responseSchema" not in config
    assert cohere.request_body(request, stream=False)["response_format"] == {"type": "json_object"}
    schema = OutputSchema("City", {"type": "object", "properties": {"name": {"type": "string"}}}, strict=False)
    with_schema = openai_chat_mapping.request_body(_request(output=schema), openai_chat_mapping.WireSettings(),
                                                   stream=False)
    assert with_schema["response_format"]["type"] == "json_schema"
