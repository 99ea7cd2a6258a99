"""LocalAgent: an LLMAgent bound to ``local/<runner>/<path>``.

The in-process runners (MLX, transformers, vLLM) and the ``local`` backend are not part of this
layer; here a scripted backend registered under the ``local`` provider name stands in for it, to
check what the agent sends. The end-to-end test with a real runner belongs with the local backend.
"""

from __future__ import annotations

import pytest

from agentadapter.agents import LocalAgent, RunConfig, tool
from agentadapter.agents.local import find_local_model
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.messages import ToolCallPart
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
    assert agent.model_id == f"local/transformers/{tmp_path / 'qwen-0.5b'}"
    assert LocalAgent(name="m", model="local/some-model").runner == "mlx"
    with pytest.raises(ConfigurationError, match="runner"):
        LocalAgent(name="x", model_path="m", runner="a/b")


async def test_a_local_agent_runs_the_loop_through_the_local_provider(tmp_path):
    answers = iter([[ToolCallPart("c1", "clock", {})], "It is noon."])
    backend = FunctionBackend(lambda request: next(answers), name="local")
    llm = offline_llm(backends={"local": backend})
    agent = LocalAgent(name="l", model_path="tiny", runner="mlx", tools=[clock],
                       device_config={"device": "cpu"},
                       generation_config={"temperature": 0.0, "max_new_tokens": 32, "top_k": 5})
    result = await agent.run("what time is it?", RunConfig(llm=llm))
    assert result.output == "It is noon." and result.tool_calls[0].output == "12:00"
    request = backend.requests[0]
    assert request.model == "mlx/tiny"
    assert (request.temperature, request.max_tokens) == (0.0, 32)
    assert request.extra_body == {"generation_config": {"top_k": 5}, "device_config": {"device": "cpu"}}
    assert result.backend == "local"
