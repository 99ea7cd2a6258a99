"""``LocalBackend``: local models answer in exactly the adapter's ``Response`` shape.

A scripted runner stands in for the model (one script per chat-template tool-call format); the
backend is reached through the facade, as users reach it (``local/...`` model ids).
"""

from __future__ import annotations

import json

import pydantic
import pytest

from agentadapter.llm.backends.base import BackendConfig
from agentadapter.llm.backends.local import LOCAL_CAPABILITIES, LocalBackend, chat_messages
from agentadapter.llm.client import LLM
from agentadapter.llm.errors import CapabilityError, ConfigurationError, OutputValidationError
from agentadapter.llm.messages import (
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    StreamAccumulator,
    TextPart,
    ToolCallPart,
)
from agentadapter.llm.runners.testing import ScriptedRunner
from agentadapter.llm.tools import Tool

WEATHER = Tool("get_weather", "The weather in a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})

FORMATS = {
    "hermes": 'I will check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "mistral": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]',
    "llama3": '{"name": "get_weather", "parameters": {"city": "Paris"}}',
}


def scripted_llm(*outputs: str, **options) -> tuple[LLM, ScriptedRunner]:
    """An LLM whose `local` backend runs a ScriptedRunner with these outputs."""
    backend = LocalBackend(runner=ScriptedRunner, runner_kwargs={"script": list(outputs)}, **options)
    return LLM(config={}, environ={}, backends={"local": backend}), backend


async def runner_of(backend: LocalBackend, model: str = "scripted/m") -> ScriptedRunner:
    runner, _ = await backend.runner_for(model)
    assert isinstance(runner, ScriptedRunner)
    return runner


@pytest.mark.parametrize("fmt", list(FORMATS))
async def test_tool_calls_in_each_format_become_neutral_tool_calls(fmt):
    llm, backend = scripted_llm(FORMATS[fmt], FORMATS[fmt])
    response = await llm.generate("local/scripted/m", "Weather in Paris?", tools=[WEATHER])
    assert response.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert response.text == ("I will check." if fmt == "hermes" else "")
    assert response.provider_details == {"runner": "scripted", "model_path": "m", "tool_call_format": fmt}
    assert response.cost_usd == 0.0 and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    # Streamed, the same answer arrives as events that accumulate to exactly that response.
    stream = llm.stream("local/scripted/m", "Weather in Paris?", tools=[WEATHER])
    events = [event async for event in stream]
    streamed = stream.response
    assert streamed is not None and streamed.parts[:-1] == response.parts[:-1]
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [("get_weather", {"city": "Paris"})]
    accumulator = StreamAccumulator(streamed.provider, streamed.model, streamed.id)
    for event in events[:-1]:
        accumulator.add(event)
    assert accumulator.response().parts == streamed.parts
    assert streamed.usage == response.usage and streamed.finish_reason == "tool_calls" and streamed.cost_usd == 0.0
    shown = "".join(e.text for e in events if e.kind == "text")
    assert "<tool_call>" not in shown and "[TOOL_CALLS]" not in shown and "{" not in shown
    runner = await runner_of(backend)
    assert runner.calls[0].tools == [WEATHER.to_openai()]
    assert "<tools>" in runner.calls[0].rendered  # the plain template knows no tools: they were described


async def test_text_usage_cost_and_stream_equal_generate():
    llm, _ = scripted_llm("Hello from a local model.", "Hello from a local model.")
    response = await llm.generate("local/scripted/m", [{"role": "system", "content": "Be brief."}, "Hi"],
                                  max_tokens=50)
    assert response.text == "Hello from a local model." and response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (6, 6)  # 5 words + end of sequence
    assert response.cost_usd == 0.0 and response.provider == "local" and response.model == "scripted/m"
    stream = llm.stream("local/scripted/m", [{"role": "system", "content": "Be brief."}, "Hi"], max_tokens=50)
    texts = [event.text async for event in stream if event.kind == "text"]
    assert len(texts) > 1 and "".join(texts) == response.text
    assert stream.response is not None and stream.response.parts == response.parts
    assert stream.response.usage == response.usage


def test_sync_callers_reach_local_models_too():
    llm, _ = scripted_llm("Hello from a thread.")
    try:
        assert llm.generate_sync("local/scripted/m", "Hi").text == "Hello from a thread."
    finally:
        llm.close()


async def test_settings_and_extra_body_reach_the_runner():
    llm, backend = scripted_llm("one two three four five", max_tokens=64)
    response = await llm.generate(
        "local/scripted/m", "Hi", temperature=0.2, top_p=0.9, seed=5, stop=["four"],
        extra_body={"top_k": 40, "repetition_penalty": 1.1, "chat_template_kwargs": {"enable_thinking": False}},
    )
    assert response.text == "one two three " and response.finish_reason == "stop"
    config = (await runner_of(backend)).calls[0].config
    assert config is not None
    assert (config.temperature, config.top_p, config.seed, config.top_k, config.repetition_penalty) == (
        0.2, 0.9, 5, 40, 1.1)
    assert (config.max_tokens, config.stop, config.chat_template_kwargs) == (64, ["four"], {"enable_thinking": False})
    llm, _ = scripted_llm("one two three four five")
    assert (await llm.generate("local/scripted/m", "Hi", max_tokens=2)).finish_reason == "length"


class City(pydantic.BaseModel):
    name: str
    population: int


async def test_structured_output_is_validated_and_repaired_a_bounded_number_of_times():
    llm, backend = scripted_llm('{"name": "Paris"}', 'Here it is: {"name": "Paris", "population": 2100000} - done')
    response = await llm.generate("local/scripted/m", "Describe Paris", output=City)
    assert response.output == City(name="Paris", population=2100000)
    assert response.text == '{"name": "Paris", "population": 2100000}'  # the JSON taken out of the prose
    runner = await runner_of(backend)
    first, second = runner.calls
    assert "JSON schema" in first.rendered and '"population"' in first.rendered
    assert second.prompt[-2] == {"role": "assistant", "content": '{"name": "Paris"}'}
    assert "not valid" in second.prompt[-1]["content"] and "population" in second.prompt[-1]["content"]
    assert response.usage.input_tokens > 0 and response.usage.output_tokens == 3 + 10  # both attempts (words + end of sequence)
    # Out of repairs: the facade raises with the last answer.
    llm, _ = scripted_llm("no", "still no", output_repairs=1)
    with pytest.raises(OutputValidationError, match="not valid JSON"):
        await llm.generate("local/scripted/m", "Describe Paris", output=City)
    # A stream with an output schema is validated first, then replayed.
    llm, _ = scripted_llm('{"name": "Oslo", "population": 700000}')
    stream = llm.stream("local/scripted/m", "Describe Oslo", output=City)
    kinds = [event.kind async for event in stream]
    assert stream.response is not None and stream.response.output == City(name="Oslo", population=700000)
    assert kinds[-1] == "finish" and "text" in kinds


async def test_tool_choice_is_honoured_as_far_as_a_local_model_can_be():
    llm, backend = scripted_llm("fine", "fine", "fine")
    time_tool = Tool("get_time", "The time.")
    await llm.generate("local/scripted/m", "Hi", tools=[WEATHER, time_tool], tool_choice="none")
    await llm.generate("local/scripted/m", "Hi", tools=[WEATHER, time_tool], tool_choice="get_time")
    await llm.generate("local/scripted/m", "Hi", tools=[WEATHER], tool_choice="required")
    none, forced, required = (await runner_of(backend)).calls
    assert none.tools == [] and "<tools>" not in none.rendered
    assert [t["function"]["name"] for t in forced.tools] == ["get_time"] and "call of the tool get_time" in forced.rendered
    assert "Answer with a tool call now" in required.rendered


def test_neutral_messages_become_chat_template_messages():
    messages = [
        Message.system("Be brief."),
        Message.user("Weather?"),
        Message("assistant", [ReasoningPart("thinking..."), TextPart("Checking."),
                              ToolCallPart("c1", "get_weather", {"city": "Paris"})]),
        Message.tool("c1", "get_weather", "sunny"),
    ]
    assert chat_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny"},
    ]
    with pytest.raises(CapabilityError, match="local runners take text only"):
        chat_messages([Message.user([TextPart("look"), ImagePart(url="https://example.com/a.png")])])


async def test_a_tool_round_trip_renders_calls_and_results_for_the_model():
    llm, backend = scripted_llm("It is sunny.")
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    response = await llm.generate("local/scripted/m", messages, tools=[WEATHER])
    assert response.text == "It is sunny." and response.finish_reason == "stop"
    rendered = (await runner_of(backend)).calls[0].rendered
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in rendered
    assert "<tool_response>" in rendered and "sunny" in rendered


async def test_model_ids_runners_and_configuration():
    backend = LocalBackend(runner=ScriptedRunner)
    assert backend.split_model("scripted/org/model") == (ScriptedRunner, "org/model")
    assert backend.split_model("transformers/some/dir") == ("transformers", "some/dir")
    assert backend.split_model("mlx-community/Qwen") == (ScriptedRunner, "mlx-community/Qwen")
    assert LocalBackend().split_model("/abs/path") == ("mlx", "/abs/path")
    assert backend.capabilities("scripted/m") == LOCAL_CAPABILITIES
    assert LOCAL_CAPABILITIES.pricing is not None and LOCAL_CAPABILITIES.json_schema and LOCAL_CAPABILITIES.known
    with pytest.raises(ConfigurationError, match="does not take devices; it takes device_config"):
        LocalBackend(BackendConfig(name="local", type="local", options={"devices": {}}))
    with pytest.raises(ConfigurationError, match="output_repairs must be 0 or more"):
        LocalBackend(output_repairs=-1)
    request = Request(model="scripted/m", messages=[Message.user("count me")], tools=[WEATHER])
    assert await backend.count_tokens(request) > 2
    await backend.aclose()


async def test_the_local_provider_resolves_from_presets_and_yaml(tmp_path, settings_env):
    llm = LLM(config={"backends": {"gpu": {"type": "local", "runner": "transformers", "output_repairs": 0,
                                           "device_config": {"device": "cuda"}}}}, environ={})
    local = llm.backend("local")
    assert isinstance(local, LocalBackend) and local.runner == "mlx" and local.config.base_url is None
    gpu = llm.backend("gpu")
    assert isinstance(gpu, LocalBackend)
    assert (gpu.runner, gpu.device_config, gpu.output_repairs) == ("transformers", {"device": "cuda"}, 0)
    settings_env(LOCAL_MODEL_PATHS=str(tmp_path))
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(json.dumps({}))
    (tmp_path / "other").mkdir()
    assert await local.list_models() == ["tiny"]
    with pytest.raises(ConfigurationError, match=r"local model 'missing' was not found.*LOCAL_MODEL_PATHS"):
        await llm.generate("local/missing", "Hi")
