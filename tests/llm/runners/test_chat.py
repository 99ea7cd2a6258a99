"""Chat templates: conversations and tools rendered with the model's own template, and the fallbacks
for templates that know no tools, no tool turns, no system role, or that do not exist."""

from __future__ import annotations

import json

import pytest

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.runners.chat import render_chat
from agentadapter.llm.runners.testing import TINY_CHAT_TEMPLATE

from .conftest import require

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "The weather.",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny"},
]
SIMPLE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
             "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] ")
NO_TOOL_TURNS = ("{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
                 "{{ raise_exception('Unknown role') }}{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                 "{% if enable_thinking is defined %}thinking={{ enable_thinking }}{% endif %}[assistant] ")


@pytest.fixture
def tokenizer(tiny_model):
    require("transformers")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)


def with_template(tokenizer, template):
    tokenizer.chat_template = template
    return tokenizer


def test_a_template_that_knows_tools_renders_them_itself(tokenizer):
    text = render_chat(with_template(tokenizer, TINY_CHAT_TEMPLATE), CONVERSATION[:2], [TOOL])
    assert json.dumps(TOOL["function"]["name"]) in text and "<tools>" not in text
    assert text.endswith("<s>assistant\n") and "Be brief." in text


def test_a_template_that_ignores_tools_gets_them_described_in_the_hermes_format(tokenizer):
    text = render_chat(with_template(tokenizer, SIMPLE), CONVERSATION, [TOOL])
    assert text.startswith("[system] Be brief.\n\n# Tools") and "<tools>" in text and "get_weather" in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert "[user] <tool_response>" in text and '"content": "sunny"' in text


def test_templates_without_a_system_role_or_tool_turns_get_what_they_accept(tokenizer):
    no_system = render_chat(with_template(tokenizer, NO_SYSTEM), CONVERSATION[:2])
    assert no_system.startswith("[user] Be brief.\n\nWeather in Paris?")
    no_tools = render_chat(with_template(tokenizer, NO_TOOL_TURNS), CONVERSATION, None, {"enable_thinking": False})
    assert "[user] <tool_response>" in no_tools and "thinking=False" in no_tools
    refusing = "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
    with pytest.raises(InvalidRequestError, match=r"chat template refused this conversation.*must alternate"):
        render_chat(with_template(tokenizer, refusing), CONVERSATION[:2])


def test_a_tokenizer_without_a_template_gets_a_plain_transcript():
    class Plain:
        chat_template = None

    text = render_chat(Plain(), CONVERSATION, [TOOL])
    assert text.startswith("System: Be brief.\n\n# Tools") and text.endswith("\n\nAssistant:")
    assert "User: Weather in Paris?" in text and "<tool_response>" in text
