"""create_agent: agents from dicts and YAML, with defaults from settings and user settings."""

from __future__ import annotations

import pytest

from agentadapter.agents import (
    AgentContext,
    AgentResult,
    BaseAgent,
    LLMAgent,
    LocalAgent,
    OnlineAgent,
    RunConfig,
    ToolRegistry,
    agent_types,
    create_agent,
    create_agents,
    load_agents,
    register_agent_type,
)
from agentadapter.agents import factory as factory_module
from agentadapter.config import get_settings
from agentadapter.llm.errors import ConfigurationError


@pytest.fixture
def settings_env(monkeypatch):
    """Set seed settings in the environment for one test (the settings object is cached)."""

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    return registry


class Summarizer(BaseAgent):
    """Summarizes text."""

    CAPABILITIES = ("summary",)

    def __init__(self, name: str | None = None, words: int = 10) -> None:
        super().__init__(name)
        self.words = words

    async def execute(self, context: AgentContext) -> AgentResult:
        return AgentResult(output=" ".join(context.input_text.split()[: self.words]))


def test_a_model_id_makes_an_online_agent_with_tools_by_name(tools):
    agent = create_agent({
        "name": "researcher", "model": "openai/gpt-4o-mini", "instructions": "Find facts.",
        "tools": ["lookup"], "model_settings": {"temperature": 0.2}, "max_turns": 4,
        "capabilities": ["research"], "description": "Finds facts.",
    }, tools=tools)
    assert isinstance(agent, OnlineAgent)
    assert agent.model == "openai/gpt-4o-mini" and agent.primary is None
    assert [t.name for t in agent.tools] == ["lookup"]
    assert agent.model_settings.temperature == 0.2 and agent.max_turns == 4
    assert agent.capabilities == ("research",) and agent.description == "Finds facts."


def test_the_seeds_shape_and_an_endpoint(tools):
    agent = create_agent({"id": "writer", "backend": {"type": "claude", "model": "claude-sonnet-4-5",
                                                      "api_key": "sk-ant"}}, tools=tools)
    assert isinstance(agent, OnlineAgent)
    assert (agent.name, agent.provider, agent.model, agent.api_key) == ("writer", "claude", "claude-sonnet-4-5",
                                                                          "sk-ant")
    assert agent.primary is not None and agent.primary.spec().type == "anthropic"


def test_agent_online_endpoints_name_endpoints(settings_env, tools):
    settings_env(AGENT_ONLINE_ENDPOINTS='{"gpu": "http://gpu-box:8000/v1", "other": "http://other/v1"}')
    agent = create_agent({"name": "a", "endpoint": "gpu", "model": "llama-3"}, tools=tools)
    assert isinstance(agent, OnlineAgent)
    assert (agent.base_url, agent.provider, agent.model) == ("http://gpu-box:8000/v1", "custom", "llama-3")
    with pytest.raises(ConfigurationError, match="AGENT_ONLINE_ENDPOINTS does not define"):
        create_agent({"name": "a", "endpoint": "missing", "model": "m"}, tools=tools)


def test_the_documented_env_forms_of_the_seed_settings(settings_env):
    settings_env(AGENT_ONLINE_ENDPOINTS="gpu=http://gpu-box:8000/v1", LOCAL_MODEL_PATHS="/models:/opt/models")
    settings = get_settings()
    assert settings.agent_online_endpoints == {"gpu": "http://gpu-box:8000/v1"}
    assert [str(p) for p in settings.local_model_paths] == ["/models", "/opt/models"]


def test_the_default_transport_and_user_settings_pick_local_or_online(settings_env, tmp_path, tools):
    (tmp_path / "tiny-llama").mkdir()
    settings_env(AGENT_DEFAULT_TRANSPORT="local", LOCAL_MODEL_PATHS=f'["{tmp_path}"]')
    local = create_agent({"name": "a", "model": "tiny-llama"}, tools=tools)
    assert isinstance(local, LocalAgent)
    assert local.model_id == f"local/mlx/{tmp_path / 'tiny-llama'}"
    # An explicit provider/model id is online whatever the default says.
    assert isinstance(create_agent({"name": "b", "model": "openai/gpt-4o-mini"}, tools=tools), OnlineAgent)
    # The user's settings win over the platform default.
    online = create_agent({"name": "c"}, defaults={"prefer_local": False, "default_model": "openai/gpt-4o"},
                          tools=tools)
    assert isinstance(online, OnlineAgent) and online.model == "openai/gpt-4o"
    local = create_agent({"name": "d"}, defaults={"prefer_local": True, "default_model": "tiny-llama"},
                         tools=tools)
    assert isinstance(local, LocalAgent)


def test_local_agents_from_specs(tools):
    agent = create_agent({
        "name": "local", "type": "local", "runner": "transformers", "model_path": "/models/qwen",
        "device_config": {"device": "cpu"},
        "generation_config": {"temperature": 0.3, "max_new_tokens": 64, "repetition_penalty": 1.1},
    }, tools=tools)
    assert isinstance(agent, LocalAgent)
    assert agent.model_id == "local/transformers//models/qwen"
    assert agent.model_settings.temperature == 0.3 and agent.model_settings.max_tokens == 64
    assert agent.model_settings.extra_body == {"repetition_penalty": 1.1} and agent.device_config == {"device": "cpu"}
    with_kwargs = create_agent({"name": "k", "type": "local", "runner": "mlx", "model_path": "/m",
                                "runner_kwargs": {"trust_remote_code": False}}, tools=tools)
    assert isinstance(with_kwargs, LocalAgent) and with_kwargs.runner_kwargs == {"trust_remote_code": False}
    parsed = create_agent({"name": "x", "model": "local/vllm/org/model"}, tools=tools)
    assert isinstance(parsed, LocalAgent) and (parsed.runner, parsed.model_path) == ("vllm", "org/model")
    with pytest.raises(ConfigurationError, match="model_path"):
        create_agent({"name": "y", "type": "local"}, tools=tools)


def test_an_output_schema_gets_a_validation_model(tools):
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    agent = create_agent({"name": "a", "type": "llm", "model": "test/echo", "output_schema": schema}, tools=tools)
    assert isinstance(agent, LLMAgent)
    assert agent.output_schema is not None and agent.output_schema.model is not None
    assert agent.output_schema.validate({"score": "3"}) == {"score": 3}


async def test_yaml_text_and_files_with_handoffs_between_agents(tmp_path, monkeypatch, tools):
    monkeypatch.setenv("TRIAGE_MODEL", "test/echo")
    text = """
agents:
  - name: triage
    type: llm
    model: ${TRIAGE_MODEL}
    instructions: Route the user.
    handoffs: [billing]
  - name: billing
    type: llm
    model: test/echo
    handoffs: [triage]
"""
    agents = create_agents(text, tools=tools)
    triage, billing = agents["triage"], agents["billing"]
    assert isinstance(triage, LLMAgent) and isinstance(billing, LLMAgent)
    assert triage.model == "test/echo"
    assert triage.find_agent("billing") is billing and billing.find_agent("triage") is triage
    path = tmp_path / "team.yaml"
    path.write_text(text)
    assert set(load_agents(path, tools=tools)) == {"triage", "billing"}
    single = create_agent("name: solo\ntype: llm\nmodel: test/echo\n", tools=tools)
    assert single.name == "solo"


def test_custom_types_and_refs(tools):
    register_agent_type("summarizer", Summarizer)
    try:
        agent = create_agent({"name": "short", "type": "summarizer", "params": {"words": 3}}, tools=tools)
        assert isinstance(agent, Summarizer) and agent.name == "short" and agent.words == 3
        assert "summarizer" in agent_types()
        register_agent_type("made", lambda spec: Summarizer(spec.name, words=1))
        assert create_agent({"name": "m", "type": "made"}, tools=tools).words == 1
    finally:
        factory_module._TYPES.clear()
    by_ref = create_agent({"name": "s", "ref": f"{__name__}:Summarizer"}, tools=tools)
    assert isinstance(by_ref, Summarizer) and by_ref.name == "s"
    with pytest.raises(ConfigurationError, match="built in"):
        register_agent_type("llm", Summarizer)


def test_spec_mistakes_are_configuration_errors(tools):
    with pytest.raises(ConfigurationError, match="not valid"):
        create_agent({"name": "a", "modle": "openai/gpt-4o-mini"}, tools=tools)
    with pytest.raises(ConfigurationError, match="known types"):
        create_agent({"name": "a", "type": "wizard"}, tools=tools)
    with pytest.raises(ConfigurationError, match="no tool named"):
        create_agent({"name": "a", "model": "openai/x", "tools": ["missing"]}, tools=tools)
    with pytest.raises(ConfigurationError, match="hands off to 'ghost'"):
        create_agent({"name": "a", "model": "openai/x", "handoffs": ["ghost"]}, tools=tools)
    with pytest.raises(ConfigurationError, match="ref must be"):
        create_agent({"name": "a", "ref": "nocolon"}, tools=tools)
    with pytest.raises(ConfigurationError, match="not a BaseAgent"):
        create_agent({"name": "a", "ref": "pathlib:Path"}, tools=tools)
    with pytest.raises(ConfigurationError, match="more than once"):
        create_agents([{"name": "a", "type": "llm"}, {"name": "a", "type": "llm"}], tools=tools)
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        create_agent("name: [unclosed", tools=tools)


async def test_an_agent_from_a_spec_runs(llm, tools):
    agent = create_agent({"name": "echo", "type": "llm", "model": "test/tools", "tools": ["lookup"]}, tools=tools)
    result = await agent.run("hi", RunConfig(llm=llm))
    assert result.output == "lookup: xxxx"
