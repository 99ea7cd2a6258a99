"""Chat templates: a conversation (and the tools offered) as the prompt text a local model expects.

:func:`render_chat` uses the model's own chat template through its Hugging Face style tokenizer
(``apply_chat_template``), so each model sees the format it was trained on, tools included. Real
templates differ in what they accept, so it falls back step by step: a template that ignores
``tools`` gets them described in the system message in the Hermes format (``<tool_call>`` tags,
which :mod:`agentadapter.llm.runners.tool_calls` parses back); a template that refuses tool-call
turns gets them as text; a template without a system role gets the system text in the first user
turn; a tokenizer with no template at all gets a plain ``Role: text`` transcript.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentadapter.llm.errors import InvalidRequestError

__all__ = ["plain_chat", "render_chat", "tool_instructions", "with_system_text", "with_tool_instructions"]

ChatDicts = list[dict[str, Any]]


def render_chat(
    tokenizer: Any, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The prompt text for ``messages`` (ending with the assistant's turn opened)."""
    conversation: ChatDicts = [dict(m) for m in messages]
    tool_list = [dict(t) for t in tools or ()]
    if not getattr(tokenizer, "chat_template", None):
        conversation = _textual_tool_turns(conversation)
        if tool_list:
            conversation = with_tool_instructions(conversation, tool_list)
        return plain_chat(conversation)
    kwargs = dict(template_kwargs or {})
    if tool_list:
        rendered = _first_accepted(tokenizer, conversation, tool_list, kwargs)
        if all(_tool_name(tool) in rendered for tool in tool_list):
            return rendered
        # The template ignores tools (it renders no tool name): describe them ourselves.
        conversation = with_tool_instructions(_textual_tool_turns(conversation), tool_list)
    return _first_accepted(tokenizer, conversation, None, kwargs)


def _first_accepted(
    tokenizer: Any, conversation: ChatDicts, tools: ChatDicts | None, kwargs: dict[str, Any]
) -> str:
    """The first form of the conversation the template accepts (see the module docstring)."""
    variants = [conversation]
    textual = _textual_tool_turns(conversation)
    if textual != conversation:
        variants.append(textual)
    for variant in list(variants):
        merged = _system_in_first_user(variant)
        if merged != variant:
            variants.append(merged)
    first_error: Exception | None = None
    for variant in variants:
        try:
            text = tokenizer.apply_chat_template(
                variant, tools=tools or None, add_generation_prompt=True, tokenize=False, **kwargs
            )
        except Exception as exc:  # jinja2's TemplateError from raise_exception(), a KeyError, ...
            first_error = first_error or exc
            continue
        if not isinstance(text, str):  # some tokenizers ignore tokenize=False
            text = tokenizer.decode(text)
        return str(text)
    raise InvalidRequestError(
        f"the model's chat template refused this conversation: {type(first_error).__name__}: {first_error}; "
        "check the roles' order (many templates want user and assistant turns to alternate)"
    ) from first_error


def _tool_name(tool: Mapping[str, Any]) -> str:
    function = tool.get("function", tool)
    return str(function.get("name", "")) if isinstance(function, Mapping) else ""


def tool_instructions(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tools described in the Hermes format (what Qwen's and NousResearch's templates say)."""
    listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{listed}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def with_tool_instructions(conversation: ChatDicts, tools: Sequence[Mapping[str, Any]]) -> ChatDicts:
    """The conversation with the tools described at the end of its system message (added if none)."""
    return with_system_text(conversation, tool_instructions(tools))


def with_system_text(conversation: ChatDicts, text: str) -> ChatDicts:
    """The conversation with ``text`` appended to its first system message (one is added if none)."""
    result = [dict(m) for m in conversation]
    if result and result[0].get("role") == "system":
        existing = str(result[0].get("content") or "")
        result[0]["content"] = f"{existing}\n\n{text}" if existing else text
    else:
        result.insert(0, {"role": "system", "content": text})
    return result


def _textual_tool_turns(conversation: ChatDicts) -> ChatDicts:
    """Tool calls and results written as Hermes text, for templates that know no tool turns."""
    result: ChatDicts = []
    for message in conversation:
        role, calls = message.get("role"), message.get("tool_calls")
        if role == "assistant" and calls:
            blocks = [
                "<tool_call>\n" + json.dumps(
                    {"name": call["function"]["name"], "arguments": call["function"].get("arguments", {})},
                    ensure_ascii=False,
                ) + "\n</tool_call>"
                for call in calls
            ]
            text = "\n".join(filter(None, [str(message.get("content") or ""), *blocks]))
            _append(result, "assistant", text)
        elif role == "tool":
            payload = {"name": message.get("name", ""), "content": message.get("content", "")}
            _append(result, "user", f"<tool_response>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_response>")
        else:
            result.append(dict(message))
    return result


def _append(conversation: ChatDicts, role: str, text: str) -> None:
    """Add a turn, joining it to the previous one when that has the same role (templates that
    insist on alternating roles accept the result)."""
    if conversation and conversation[-1].get("role") == role and not conversation[-1].get("tool_calls"):
        conversation[-1] = {**conversation[-1], "content": f"{conversation[-1].get('content') or ''}\n{text}"}
    else:
        conversation.append({"role": role, "content": text})


def _system_in_first_user(conversation: ChatDicts) -> ChatDicts:
    """System text moved into the first user turn (for templates without a system role)."""
    system = [str(m.get("content") or "") for m in conversation if m.get("role") == "system"]
    if not system:
        return conversation
    rest = [dict(m) for m in conversation if m.get("role") != "system"]
    prefix = "\n\n".join(s for s in system if s)
    for message in rest:
        if message.get("role") == "user":
            message["content"] = f"{prefix}\n\n{message.get('content') or ''}"
            return rest
    return [{"role": "user", "content": prefix}, *rest]


def plain_chat(conversation: Sequence[Mapping[str, Any]]) -> str:
    """A transcript for tokenizers without a chat template (base models): ``Role: text`` turns."""
    lines = [f"{str(m.get('role', 'user')).capitalize()}: {m.get('content') or ''}" for m in conversation]
    return "\n\n".join([*lines, "Assistant:"])
