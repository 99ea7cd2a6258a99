"""LangGraph and LangChain agents in our workflows, on our offline models: tools, usage, cost, events, errors."""

from __future__ import annotations

import asyncio
import functools
import operator
import threading
from pathlib import Path

import pytest
from tests.frameworks.conftest import check_costed, need, run_workflow

from agentadapter import LLM
from agentadapter.orchestrator.errors import WorkflowError
from agentadapter.orchestrator.workflow import load_workflow

GRAPH = '''
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentadapter.frameworks.langchain import AgentAdapterChatModel


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    return f"order {order_id} shipped on Monday"


def build():
    model = AgentAdapterChatModel(model="test/tools").bind_tools([lookup_order])

    async def call_model(state: MessagesState):
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([lookup_order]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile()
'''

WORKFLOW = """
name: support-desk
strategy: sequential
agents:
  - {name: support, framework: langgraph, ref: "support_graph:build"}
  - {name: writer, model: test/echo, instructions: "Write the answer up."}
"""


@pytest.fixture(autouse=True)
def _installed() -> None:
    need("langgraph", "langchain")


async def test_a_langgraph_graph_runs_beside_our_agent_on_our_models(priced_llm: LLM, tmp_path: Path) -> None:
    ran = await run_workflow(priced_llm, tmp_path, "support_graph", GRAPH, WORKFLOW, "Where is order 7?")
    await check_costed(priced_llm, ran, "support", "lookup_order")
    # The graph's answer came from its tool, and our agent got it as its input.
    support = ran.agent("support")
    assert "shipped on Monday" in support["output"]
    assert "shipped on Monday" in ran.result.output
    assert ran.agent("writer")["status"] == "completed"
    # The orchestrator streams its agents, so the graph's model calls stream: its answer arrived as tokens.
    assert "shipped on Monday" in "".join(e["text"] for e in ran.of_type("token", "support"))


async def test_a_langchain_chain_runs_as_an_agent_and_the_chat_model_streams(priced_llm: LLM, tmp_path: Path) -> None:
    code = """
from langchain_core.output_parsers import StrOutputParser
from agentadapter.frameworks.langchain import AgentAdapterChatModel

chain = AgentAdapterChatModel(model="test/echo") | StrOutputParser()
"""
    workflow = """
strategy: sequential
agents:
  - {name: chain, framework: langchain, ref: "echo_chain:chain"}
  - {name: writer, model: test/echo}
"""
    ran = await run_workflow(priced_llm, tmp_path, "echo_chain", code, workflow, "Say hello")
    assert ran.result.status == "completed"
    assert ran.agent("chain")["output"] == "Say hello"
    assert ran.agent("chain")["cost_usd"] > 0

    from agentadapter.frameworks import current_run
    from agentadapter.frameworks.langchain import AgentAdapterChatModel

    model = AgentAdapterChatModel(model="test/echo", llm=priced_llm)
    chunks = [chunk async for chunk in model.astream("one two three")]
    assert "".join(str(c.content) for c in chunks) == "one two three"
    whole = functools.reduce(operator.add, chunks)
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] > 0
    assert current_run() is None  # outside an agent the call went to the facade given


async def test_a_blocking_framework_call_in_a_thread_is_stopped_by_cancellation(priced_llm: LLM) -> None:
    from langchain_core.runnables import RunnableLambda

    from agentadapter.frameworks.langchain import AgentAdapterChatModel, LangChainAgent

    model = AgentAdapterChatModel(model="test/echo")
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def blocking(messages: object) -> str:
        calls.append(str(model.invoke("first").content))  # a synchronous model call from a worker thread
        entered.set()
        release.wait(10)
        try:
            model.invoke("second")
        except Exception as exc:  # the agent was cancelled: the next model call is refused
            calls.append(type(exc).__name__)
            raise
        return "not reached"

    agent = LangChainAgent(RunnableLambda(blocking), name="blocking", llm=priced_llm)
    task = asyncio.create_task(agent.run("go"))
    assert await asyncio.to_thread(entered.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    for _ in range(200):
        if len(calls) == 2:
            break
        await asyncio.sleep(0.01)
    assert calls == ["first", "FrameworkCancelled"]


async def test_a_framework_failure_is_our_error(priced_llm: LLM) -> None:
    from langchain_core.runnables import RunnableLambda

    from agentadapter.frameworks import FrameworkError
    from agentadapter.frameworks.langchain import LangChainAgent

    def broken(value: object) -> str:
        raise KeyError("missing_state")

    agent = LangChainAgent(RunnableLambda(broken), name="broken", llm=priced_llm)
    with pytest.raises(FrameworkError, match="langchain agent 'broken' failed: KeyError") as caught:
        await agent.run("go")
    assert caught.value.framework == "langchain" and caught.value.agent == "broken"


def test_framework_entries_are_checked_when_the_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "agents:\n  - {name: a, framework: haystack, ref: 'x:y'}\n  - {name: b, framework: langgraph}\n"
        "  - {name: c, framework: langgraph, ref: 'x:y', tools: [web_search]}\n",
        "utf-8",
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    message = str(caught.value)
    assert "bad.yaml:2: agents[0].framework: 'haystack' is not a known framework" in message
    assert "bad.yaml:3: agents[1].framework: a framework agent needs ref:" in message
    assert "bad.yaml:4: agents[2].tools: does not apply to a langgraph agent" in message


def test_a_ref_that_is_not_the_frameworks_object_is_refused(tmp_path: Path) -> None:
    (tmp_path / "not_a_graph.py").write_text("thing = 42\n", "utf-8")
    path = tmp_path / "wf.yaml"
    path.write_text("agents:\n  - {name: g, framework: langgraph, ref: 'not_a_graph:thing'}\n", "utf-8")
    with pytest.raises(WorkflowError, match=r"wf.yaml:2: agents\[0\] \(g\): .*wraps a LangChain Runnable"):
        _ = load_workflow(path).agents


async def test_our_error_inside_the_framework_is_raised_as_it_is(tmp_path: Path) -> None:
    from agentadapter.frameworks.langchain import AgentAdapterChatModel, LangChainAgent
    from agentadapter.llm.errors import BudgetExceededError

    prices = {"input": 1000.0, "output": 1000.0}
    llm = LLM(
        config={
            "catalog": {"test/echo": {"pricing": prices}},
            "budgets": [{"scope": "global", "limit_usd": 0.000001, "window": "day"}],
        }
    )
    try:
        agent = LangChainAgent(AgentAdapterChatModel(model="test/echo", max_tokens=100), name="spender", llm=llm)
        with pytest.raises(BudgetExceededError):
            await agent.run("spend it all")
    finally:
        await llm.aclose()
