"""``LLMAgent``: a declarative agent driven by a model, and the tool loop that runs it.

An ``LLMAgent`` is data: instructions, a model (an id, an alias or a failover route), model
settings, tools, handoffs, guardrails, an output type and a turn limit. Its :meth:`LLMAgent.execute`
is the loop, and the one place to read to know what a run does; the steps themselves live in
:mod:`agentadapter.agents._loop`. Every model call goes through the adapter facade
(:class:`~agentadapter.llm.client.LLM`), so every provider and local model is an agent backend.
:class:`~agentadapter.agents.online.OnlineAgent` and :class:`~agentadapter.agents.local.LocalAgent`
are ``LLMAgent`` s whose :meth:`LLMAgent.bind_model` points at an HTTP endpoint or a local runner.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pydantic

from agentadapter.agents._loop import NATIVE_OUTPUT_BACKENDS, OUTPUT_TOOL, AgentRun, Outcome
from agentadapter.agents.base import BaseAgent
from agentadapter.agents.context import AgentContext
from agentadapter.agents.events import AgentStream
from agentadapter.agents.guardrails import coerce_guardrail
from agentadapter.agents.handoffs import Handoff, coerce_handoff
from agentadapter.agents.result import AgentResult, RunState
from agentadapter.agents.run_config import ModelSettings, RunConfig
from agentadapter.agents.tools.decorator import coerce_agent_tool
from agentadapter.llm.errors import ConfigurationError, InvalidRequestError
from agentadapter.llm.messages import ToolCallPart
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM, ModelId

__all__ = ["Instructions", "LLMAgent", "OutputStrategy", "OutputType"]

Instructions = str | Callable[[AgentContext], "str | Awaitable[str]"]
OutputType = type[pydantic.BaseModel] | Mapping[str, Any] | OutputSchema
OutputStrategy = Literal["auto", "native", "tool"]


@dataclass(eq=False)
class LLMAgent(BaseAgent):
    """An agent driven by a model: instructions, tools, handoffs, guardrails and a typed output."""

    agent_type: ClassVar[str] = "llm"
    _traces_itself: ClassVar[bool] = True

    name: str
    """The agent's name: how handoffs, messages and results refer to it."""
    _: KW_ONLY
    instructions: Instructions = ""
    """The system prompt, or a function of the context returning it (sync or async)."""
    model: ModelId | None = None
    """A ``provider/model`` id, an alias or route from agentadapter.yaml, or a list (a failover route)."""
    model_settings: ModelSettings = field(default_factory=ModelSettings)
    """Generation settings for every call (temperature, max_tokens, ...); a dict is accepted."""
    tools: list[Any] = field(default_factory=list)
    """Functions, @tool s, Tools, registered tool names, or agents (used as tools)."""
    handoffs: list[Any] = field(default_factory=list)
    """Agents (or ``handoff(agent, ...)``) this agent may pass the conversation to."""
    input_guardrails: list[Any] = field(default_factory=list)
    """Checks on the run's input: functions, InputGuardrails, or classifier agents."""
    output_guardrails: list[Any] = field(default_factory=list)
    """Checks on the final output: functions, OutputGuardrails, or classifier agents."""
    output_type: OutputType | None = None
    """A pydantic model or JSON schema the final answer must match; None: plain text."""
    output_strategy: OutputStrategy = "auto"
    """``native`` structured output, a forced ``tool``, or ``auto`` (native where the model has it)."""
    max_turns: int = 10
    """Model calls allowed per run unless RunConfig.max_turns says otherwise."""
    description: str = ""
    """What the agent is for (shown to models deciding a handoff, and in listings)."""
    capabilities: tuple[str, ...] = ()
    """What it can do, for the protocol's registry (defaults to the class's CAPABILITIES)."""
    _output_schema: OutputSchema | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidRequestError("an agent needs a non-empty name")
        if self.max_turns < 1:
            raise InvalidRequestError(f"agent {self.name!r}: max_turns must be at least 1")
        if self.output_strategy not in ("auto", "native", "tool"):
            raise InvalidRequestError(
                f"agent {self.name!r}: output_strategy must be auto, native or tool, not {self.output_strategy!r}"
            )
        self.model_settings = ModelSettings.of(self.model_settings)
        # Normalize in place so that mistakes show at construction, not at the first run.
        self.tools = self.prepared_tools()
        self.handoffs = list(self.prepared_handoffs().values())
        self.input_guardrails = [coerce_guardrail(g, "input") for g in self.input_guardrails]
        self.output_guardrails = [coerce_guardrail(g, "output") for g in self.output_guardrails]
        self._output_schema = OutputSchema.of(self.output_type) if self.output_type is not None else None
        if not self.capabilities:
            self.capabilities = tuple(type(self).CAPABILITIES)

    # ------------------------------------------------------------------------------ the loop

    async def execute(self, context: AgentContext) -> AgentResult:
        """Run the tool loop for ``context`` and return the result.

        1. Start the run's state from the history and input (or pick up a paused run's state), and
           run the input guardrails once; a trip raises ``GuardrailTripped``.
        2. Call the model with the active agent's instructions, the conversation, its tools, one
           ``transfer_to_<agent>`` tool per handoff and, under the ``tool`` output strategy, the
           ``final_output`` tool. Usage and cost add up; the cost cap (``BudgetExceededError``) and
           the turn limit (``MaxTurnsExceeded``) are checked before each call.
        3. If the model asked for tools, run them (concurrently, each with a timeout; a tool error,
           a timeout or invalid arguments go back to the model as an error result) and go to 2. A
           tool that needs approval pauses the run (status ``paused``, resumable state). A handoff
           switches to the receiving agent, which continues at 2 with its own instructions and
           tools; a receiver that is not an ``LLMAgent`` finishes the run itself. A call of
           ``final_output`` is the final answer (step 4).
        4. Otherwise the answer is final. With an output type it is validated; a failure goes back
           to the model, at most ``RunConfig.max_output_repairs`` times, then
           ``OutputValidationError``. The output guardrails check it; a trip raises.
        5. Return the ``AgentResult``: output, conversation, tool calls, handoffs, guardrail
           verdicts, usage and cost summed over every turn, and the backend and model that answered.
        """
        state = self._start_state(context)
        run = AgentRun(state, context, self)
        try:
            await run.activate(self, context)
            await run.check_input(self.input_guardrails)
            outcome: Outcome | None = None
            if state.pending or state.done_results:
                outcome = await run.run_tool_calls(_last_tool_calls(state))
            while True:
                if outcome is None or outcome.kind == "continue":
                    response = await run.call_model()
                    outcome = await run.after_response(response)
                    continue
                if outcome.kind == "paused":
                    run.finish("paused")
                    return run.result("paused")
                if outcome.kind == "handoff":
                    assert outcome.handoff is not None
                    delegated = await self._hand_off(run, outcome.handoff, outcome.call_id)
                    if delegated is not None:
                        return delegated
                    outcome = None
                    continue
                agent = run.act.agent
                await run.check_output(agent.output_guardrails, outcome.output)
                run.finish("completed")
                return run.result("completed", outcome.output, outcome.text)
        except BaseException as error:
            run.fail(error)
            raise

    async def _hand_off(self, run: AgentRun, handoff: Handoff, call_id: str) -> AgentResult | None:
        """Switch the run to the receiving agent; a non-LLM receiver runs to the end here."""
        visible = run.record_handoff(handoff, call_id)
        run.deactivate("handoff")
        target = handoff.agent
        context = run.context.for_agent(target, input=visible if not isinstance(target, LLMAgent) else None)
        if isinstance(target, LLMAgent):
            run.state.messages = visible
            run.state.agent = target.name
            await run.activate(target, context)
            return None
        result = await target.execute(context)
        run.finish(result.status)
        return run.merge_delegated(result)

    def _start_state(self, context: AgentContext) -> RunState:
        state = context.run_state
        if state is not None:
            if state.agent != self.name:
                raise InvalidRequestError(
                    f"this run state belongs to agent {state.agent!r}, not {self.name!r}; resume it with "
                    "the agent that started the run (it finds the agent a handoff led to)"
                )
            missing = [p.call_id for p in state.pending if p.call_id not in context.approvals]
            if missing:
                raise InvalidRequestError(
                    f"the run waits for approval of tool call(s) {', '.join(missing)}; pass "
                    "approvals={call_id: True or False} for each of them"
                )
            return state
        history = list(context.history)
        messages = [*history, *context.messages]
        if not messages:
            raise InvalidRequestError(f"agent {self.name!r} was given no input; pass a prompt or messages to run()")
        max_turns = context.config.max_turns or self.max_turns
        state = RunState(context.run_id, self.name, messages, len(history), len(messages), max_turns=max_turns)
        context.run_state = state
        return state

    # ------------------------------------------------------------------------------ resuming

    async def resume(
        self, state: RunState | str | bytes | Mapping[str, Any], approvals: Mapping[str, bool],
        config: RunConfig | None = None, *, deps: Any = None,
    ) -> AgentResult:
        """Continue a paused run: ``approvals`` maps each pending call id to True (run it) or False.

        ``state`` is the paused result's ``state``, or its JSON (``state.to_json()``). Call this on
        the agent the run started with; it finds the agent the run was paused in through handoffs.
        """
        context = self._resume_context(state, approvals, config, deps)
        return await context.agent._run_with_context(context)

    def resume_stream(
        self, state: RunState | str | bytes | Mapping[str, Any], approvals: Mapping[str, bool],
        config: RunConfig | None = None, *, deps: Any = None, reasons: Mapping[str, str] | None = None,
    ) -> AgentStream:
        """:meth:`resume`, yielding typed events as they happen; ``stream.result`` afterwards.

        ``reasons`` (by call id) tell the model why a call was declined.
        """
        context = self._resume_context(state, approvals, config, deps)
        context.approval_reasons = {str(k): str(v) for k, v in (reasons or {}).items()}
        return AgentStream(context, context.agent._run_with_context)

    def _resume_context(
        self, state: RunState | str | bytes | Mapping[str, Any], approvals: Mapping[str, bool],
        config: RunConfig | None, deps: Any,
    ) -> AgentContext:
        if isinstance(state, str | bytes):
            state = RunState.from_json(state)
        elif not isinstance(state, RunState):
            state = RunState.from_dict(state)
        current = self.find_agent(state.agent)
        if current is None or not isinstance(current, LLMAgent):
            raise InvalidRequestError(
                f"run {state.run_id} was paused in agent {state.agent!r}, which {self.name!r} cannot reach "
                "through its handoffs; call resume() on the agent that started the run"
            )
        config = config if config is not None else RunConfig()
        if config.max_turns is not None:
            state.max_turns = config.max_turns  # a resumed run may be given more (or fewer) turns
        if config.run_id is None:
            config = dataclasses.replace(config, run_id=state.run_id)
        return AgentContext(current, run_id=state.run_id, config=config, deps=deps, run_state=state,
                            approvals={str(k): bool(v) for k, v in approvals.items()})

    def find_agent(self, name: str) -> BaseAgent | None:
        """This agent or one reachable through handoffs, by name."""
        seen: set[int] = set()
        queue: deque[BaseAgent] = deque([self])
        while queue:
            agent = queue.popleft()
            if id(agent) in seen:
                continue
            seen.add(id(agent))
            if agent.name == name:
                return agent
            if isinstance(agent, LLMAgent):
                queue.extend(h.agent for h in agent.prepared_handoffs().values())
        return None

    # -------------------------------------------------------------------------- preparation

    def bind_model(self, context: AgentContext) -> tuple[LLM, ModelId]:
        """The facade and model id this agent's calls use (bindings override this)."""
        llm = context.llm
        model = self.model or llm.file_config.default_model
        if not model:
            raise ConfigurationError(
                f"agent {self.name!r} has no model; set model='provider/model' (e.g. 'openai/gpt-4o-mini') "
                "or default_model in agentadapter.yaml"
            )
        return llm, model

    def prepared_tools(self) -> list[Tool]:
        tools = [coerce_agent_tool(t) for t in self.tools]
        names: set[str] = set()
        for item in tools:
            if item.name in names:
                raise InvalidRequestError(f"agent {self.name!r} has two tools named {item.name!r}; rename one")
            if item.name == OUTPUT_TOOL or item.name.startswith("transfer_to_"):
                raise InvalidRequestError(
                    f"agent {self.name!r}: the tool name {item.name!r} is reserved for the agent loop; rename it"
                )
            names.add(item.name)
        return tools

    def prepared_handoffs(self) -> dict[str, Handoff]:
        handoffs: dict[str, Handoff] = {}
        for value in self.handoffs:
            item = coerce_handoff(value)
            if item.tool_name in handoffs:
                raise InvalidRequestError(
                    f"agent {self.name!r} has two handoffs with the tool name {item.tool_name!r}; give one a "
                    "tool_name= with handoff(agent, tool_name=...)"
                )
            handoffs[item.tool_name] = item
        return handoffs

    @property
    def output_schema(self) -> OutputSchema | None:
        """The output type as a schema (a validation model is built for a JSON schema dict)."""
        if self._output_schema is None and self.output_type is not None:
            self._output_schema = OutputSchema.of(self.output_type)
        return self._output_schema

    def output_mode_for(self, llm: LLM, model: ModelId) -> Literal["native", "tool"]:
        """Native structured output where the backend or model supports it, else a forced tool."""
        if self.output_strategy != "auto":
            return self.output_strategy
        target = llm.resolver.route(model).targets[0]
        if type(target.backend).type_name in NATIVE_OUTPUT_BACKENDS:
            return "native"
        capabilities = target.capabilities()
        # A model the catalog does not know is assumed to take response_format (vLLM, Ollama and most
        # compatible servers do); only a known "no" falls back to the forced tool.
        return "native" if capabilities.json_schema or not capabilities.known else "tool"

    async def render_instructions(self, context: AgentContext) -> str:
        instructions = self.instructions
        if not callable(instructions):
            return instructions
        rendered = instructions(context)
        if inspect.isawaitable(rendered):
            rendered = await rendered
        if not isinstance(rendered, str):
            raise InvalidRequestError(
                f"agent {self.name!r}: its instructions function returned a {type(rendered).__name__}, not a str"
            )
        return rendered

    def clone(self, **changes: Any) -> LLMAgent:
        """A copy with some fields changed (``agent.clone(model="anthropic/claude-sonnet-4-5")``)."""
        return dataclasses.replace(self, **changes)


def _last_tool_calls(state: RunState) -> list[ToolCallPart]:
    for message in reversed(state.messages):
        if message.role == "assistant":
            return message.tool_calls
    raise InvalidRequestError("this run state has pending tool calls but no assistant message that asked for them")
