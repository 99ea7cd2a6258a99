"""``@tool`` and the ToolRegistry."""

from __future__ import annotations

import pytest

from agentadapter.agents import AgentContext, FunctionTool, LLMAgent, ToolRegistry, default_registry, tool
from agentadapter.agents.tools import registry as registry_module
from agentadapter.llm.errors import ConfigurationError, InvalidRequestError
from agentadapter.llm.tools import Tool


def test_tool_without_parentheses_builds_the_schema_from_hints_and_docstring():
    @tool
    def search(query: str, limit: int = 5) -> list[str]:
        """Search the catalogue.

        Args:
            query: What to look for.
            limit: How many results.
        """
        return [query] * limit

    assert isinstance(search, FunctionTool)
    assert search.name == "search" and search.description == "Search the catalogue."
    assert search.parameters["required"] == ["query"]
    assert search.parameters["properties"]["query"] == {"type": "string", "description": "What to look for."}
    assert search.parameters["properties"]["limit"]["default"] == 5
    assert search("a", limit=2) == ["a", "a"]  # still callable as the function


async def test_tool_with_parentheses_sync_and_async():
    @tool(name="lookup", description="Find a thing.", timeout=3, needs_approval=True)
    async def find(key: str) -> str:
        return key * 2

    @tool()
    def double(n: int) -> int:
        """Double it."""
        return n * 2

    assert (find.name, find.description, find.timeout, find.needs_approval) == ("lookup", "Find a thing.", 3, True)
    assert find.requires_approval({"key": "x"})
    assert await find.invoke({"key": "ab"}) == "abab"
    assert await double.invoke({"n": "21"}) == 42  # validated and coerced by pydantic
    with pytest.raises(InvalidRequestError, match="invalid arguments"):
        await double.invoke({"n": "many"})


async def test_a_context_parameter_is_hidden_from_the_schema_and_filled_in():
    @tool
    async def whoami(context: AgentContext, greeting: str) -> str:
        """Greets as the agent."""
        return f"{greeting}, I am {context.agent_name}"

    assert whoami.takes_context and list(whoami.parameters["properties"]) == ["greeting"]
    context = AgentContext(LLMAgent("bob"))
    assert await whoami.invoke({"greeting": "hi"}, context) == "hi, I am bob"


def test_tools_are_refused_with_a_reason():
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(InvalidRequestError, match="no type hint"):
        tool(untyped)
    with pytest.raises(InvalidRequestError, match="timeout"):
        tool(timeout=0)(untyped)
    with pytest.raises(InvalidRequestError, match="not accepted by providers"):
        tool(lambda: 1)


def test_registry_by_name_and_decorator():
    registry = ToolRegistry()

    @registry.tool
    def ping() -> str:
        """Ping."""
        return "pong"

    @registry.tool(name="add_numbers")
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    assert registry.names() == ["add_numbers", "ping"] and "ping" in registry and len(registry) == 2
    assert registry.get("ping") is ping
    assert [t.name for t in registry.resolve(["ping", "add_numbers"])] == ["ping", "add_numbers"]
    with pytest.raises(ConfigurationError, match=r"no tool named 'nope'.*add_numbers, ping"):
        registry.get("nope")
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(lambda: 1, name="ping")
    registry.register(ping)  # the same tool again: fine
    registry.register(Tool("ping", "schema only"), replace=True)
    assert registry.get("ping").function is None
    registry.unregister("ping")
    assert "ping" not in registry


def test_lazy_and_builtin_tools(monkeypatch):
    registry = ToolRegistry(lazy={"cwd": "os:getcwd", "broken": "no_such_module_xyz:thing"})
    assert registry.names() == ["broken", "cwd"]
    assert registry.get("cwd").name == "cwd"
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        registry.get("broken")
    with pytest.raises(ConfigurationError, match="module:attribute"):
        registry.register_lazy("x", "nocolon")
    # The default registry holds the declared built-ins and is shared.
    assert default_registry() is default_registry()
    monkeypatch.setattr(registry_module, "_DEFAULT", None)
    monkeypatch.setitem(registry_module.BUILTIN_TOOLS, "cwd_builtin", "os:getcwd")
    assert "cwd_builtin" in default_registry()


def test_agents_take_tools_by_registered_name(monkeypatch):
    registry = ToolRegistry()

    @registry.tool
    def ping() -> str:
        """Ping."""
        return "pong"

    monkeypatch.setattr(registry_module, "_DEFAULT", registry)
    agent = LLMAgent("a", tools=["ping", lambda_tool])
    assert [t.name for t in agent.tools] == ["ping", "lambda_tool"]


def lambda_tool(x: int) -> int:
    """A plain function becomes a tool."""
    return x
