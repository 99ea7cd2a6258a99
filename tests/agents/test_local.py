"""LocalAgent: an LLMAgent bound to ``local/<runner>/<model>``.

Here the local backend is stood in for (a scripted backend registered as the ``local`` provider, or
a scripted runner) to check what the agent sends and how it binds; the end-to-end runs with real
runners on a tiny model are in tests/llm/runners/test_local_agent.py.
"""

from __future__ import annotations

import pytest

from agentadapter.agents import LocalAgent, RunConfig, tool
from agentadapter.agents.local import find_local_model
from agentadapter.llm.backends.local import LocalBackend
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.messages import ToolCallPart
from agentadapter.llm.runners.testing import ScriptedRunner
from agentadapter.testing import FunctionBackend, offline_llm


@tool
def clock() -> str:
    """The time."""
    return "12:00"


def test_model_ids_and_lookup_in_local_model_paths(tmp_path):
    (tmp_path / "qwen-0.5b").mkdir()
    assert find_local_model("qwen-0.5b", [tmp_path]) == str(tmp_path / "qwen-0.5b")
    assert find_local_model("org/unknown", [tmp_path]) == "org/unknown"
    agent = LocalAgent(name="l", model_path=str(tmp_path / "qwen-0.5b"), runner="transformers")
    assert agent.model_id == f"local/transformers/{tmp_path / 'qwen-0.5b'}" == agent.model
    assert LocalAgent(name="m", model="local/some-model").runner == "mlx"
    with pytest.raises(ConfigurationError, match="runner"):
        LocalAgent(name="x", model_path="m", runner="a/b")


def test_the_seeds_model_id_runner_and_runner_kwargs(tmp_path):
    agent = LocalAgent(model_id=str(tmp_path), runner="mlx")
    assert agent.model_id == f"local/mlx/{tmp_path}" and agent.name == tmp_path.name
    assert LocalAgent(model_id="local/vllm/org/model").runner == "vllm"
    assert LocalAgent(model_id="local/vllm/org/model").model_path == "org/model"
    scripted = LocalAgent(name="s", model_id="any", runner=ScriptedRunner, runner_kwargs={"script": ["hi"]})
    assert scripted.model_id == "local/scripted/any" and scripted.needs_own_backend
    assert LocalAgent(name="s", model_id="local/scripted/any", runner=ScriptedRunner).model_id == "local/scripted/any"
    with pytest.raises(ConfigurationError, match="names runner 'vllm' but runner='mlx'"):
        LocalAgent(name="c", model_id="local/vllm/org/model", runner="mlx")
    with pytest.raises(ConfigurationError, match="model_id= \\(or model_path=\\)"):
        LocalAgent(name="none")
    with pytest.raises(ConfigurationError, match="Runner subclass"):
        LocalAgent(name="bad", model_id="m", runner=dict)  # type: ignore[arg-type]


def test_clones_keep_or_rebind_the_model(tmp_path):
    agent = LocalAgent(name="a", model_id=str(tmp_path), runner="transformers", instructions="Be brief.")
    assert agent.clone(name="b").model_id == agent.model_id
    assert agent.clone(runner="mlx").model_id == f"local/mlx/{tmp_path}"
    assert agent.clone(model_id="other").model_id == "local/transformers/other"
    assert agent.clone(model="local/vllm/org/x").model_id == "local/vllm/org/x"
    assert agent.clone(model_path="elsewhere", runner="vllm").model_id == "local/vllm/elsewhere"


async def test_a_local_agent_runs_the_loop_through_the_local_provider():
    answers = iter([[ToolCallPart("c1", "clock", {})], "It is noon."])
    backend = FunctionBackend(lambda request: next(answers), name="local")
    llm = offline_llm(backends={"local": backend})
    agent = LocalAgent(name="l", model_path="tiny", runner="mlx", tools=[clock],
                       generation_config={"temperature": 0.0, "max_new_tokens": 32, "top_k": 5,
                                          "repetition_penalty": 1.1})
    result = await agent.run("what time is it?", RunConfig(llm=llm))
    assert result.output == "It is noon." and result.tool_calls[0].output == "12:00"
    request = backend.requests[0]
    assert request.model == "mlx/tiny"
    assert (request.temperature, request.max_tokens) == (0.0, 32)
    # Generation options the adapter has no field for travel as extra_body, as for a vLLM server.
    assert request.extra_body == {"top_k": 5, "repetition_penalty": 1.1}
    assert result.backend == "local"


async def test_load_time_settings_get_a_backend_of_their_own_sharing_the_facade():
    llm = offline_llm()
    agent = LocalAgent(
        name="l", model_id="any", runner=ScriptedRunner, tools=[clock], device_config={"device": "cpu"},
        runner_kwargs={"script": ['<tool_call>{"name": "clock", "arguments": {}}</tool_call>', "It is noon."]},
    )
    result = await agent.run("what time is it?", RunConfig(llm=llm))
    assert result.output == "It is noon." and [c.name for c in result.tool_calls] == ["clock"]
    assert result.backend == "local" and result.cost_usd == 0.0 and result.usage.output_tokens > 0
    bound, model = agent.bind_model(type("Context", (), {"llm": llm})())  # type: ignore[arg-type]
    assert model == "local/scripted/any" and bound is not llm
    assert bound.ledger is llm.ledger and bound.transport is llm.transport and bound.budgets is llm.budgets
    backend = bound.backend("local")
    assert isinstance(backend, LocalBackend) and backend.runner is ScriptedRunner
    assert backend.device_config == {"device": "cpu"}
    assert agent.bind_model(type("Context", (), {"llm": llm})())[0] is bound  # built once per facade
    assert sum(t.requests for t in await llm.usage()) == 2  # the run's calls are in the parent's ledger
