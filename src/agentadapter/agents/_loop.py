"""The steps of the agent loop; :meth:`LLMAgent.execute` strings them together.

:class:`AgentRun` holds one run's moving parts: the :class:`~agentadapter.agents.result.RunState`,
the active agent's :class:`Activation` (its model binding, tools, handoff tools, output strategy,
settings and agent span) and the run's context. Each method is one step: call the model, run the
requested tools, hand off, validate the final answer (or send it back for repair), check the
guardrails, build the result. Private: the public surface is the agent classes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from agentadapter.agents import metrics, tracing
from agentadapter.agents.errors import GuardrailTripped, MaxTurnsExceeded
from agentadapter.agents.events import (
    ApprovalRequiredEvent,
    GuardrailEvent,
    HandoffEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agentadapter.agents.guardrails import GuardrailResult, InputGuardrail, OutputGuardrail
from agentadapter.agents.handoffs import Handoff
from agentadapter.agents.result import (
    AgentResult,
    ApprovalRequest,
    GuardrailRecord,
    HandoffRecord,
    RunState,
    RunStatus,
    ToolCallRecord,
    ToolOutcome,
    to_jsonable,
)
from agentadapter.agents.tools.decorator import FunctionTool
from agentadapter.llm.errors import (
    AgentAdapterError,
    BudgetExceededError,
    InvalidRequestError,
    OutputValidationError,
)
from agentadapter.llm.messages import Message, Part, Response, ToolCallPart, ToolResultPart
from agentadapter.llm.output import OutputSchema
from agentadapter.llm.tools import Tool

if TYPE_CHECKING:
    from agentadapter.agents.base import BaseAgent
    from agentadapter.agents.context import AgentContext
    from agentadapter.agents.llm_agent import LLMAgent
    from agentadapter.llm.client import LLM, ModelId

OUTPUT_TOOL = "final_output"
"""The tool the model calls with its final answer under the ``tool`` output strategy."""

# Backends that turn Request.output into the provider's own mechanism whatever the catalog says
# (Anthropic and Cohere through their own forced tool or JSON mode; the test doubles answer it).
NATIVE_OUTPUT_BACKENDS = frozenset({"anthropic", "gemini", "cohere", "openai_responses", "test", "function"})


@dataclass(slots=True)
class _ValidatedByAgent(OutputSchema):
    """The output schema as the backend sees it. The facade would raise on an invalid answer and
    lose that turn's usage; the loop validates itself so it can count the turn and ask for a repair."""

    def parse(self, text: str) -> Any:
        return None


@dataclass(slots=True)
class Outcome:
    """What a step decided: go on, stop with a final answer, pause, or hand off."""

    kind: Literal["continue", "final", "paused", "handoff"]
    output: Any = None
    text: str = ""
    handoff: Handoff | None = None
    call_id: str = ""


CONTINUE = Outcome("continue")


@dataclass(slots=True)
class Activation:
    """One agent's turn at the run, prepared once: what every model call of it needs."""

    agent: LLMAgent
    context: AgentContext
    llm: LLM
    model: ModelId
    instructions: str
    tools: list[Tool]
    """Everything offered to the model: the agent's tools, handoff tools, the output tool."""
    tool_map: dict[str, Tool]
    handoffs: dict[str, Handoff]
    output: OutputSchema | None
    output_mode: Literal["native", "tool"] | None
    settings: dict[str, Any]
    span: tracing.Span[Any]
    model_label: str = field(default="")

    @property
    def request_output(self) -> OutputSchema | None:
        output = self.output
        if output is None or self.output_mode != "native":
            return None
        return _ValidatedByAgent(output.name, output.json_schema, output.model, output.strict)


def tool_output_text(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    try:
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


class AgentRun:
    """One run of the loop (see :meth:`LLMAgent.execute` for the order of the steps)."""

    def __init__(self, state: RunState, context: AgentContext, starting_agent: BaseAgent) -> None:
        self.state = state
        self.context = context
        self.config = context.config
        self.started = time.perf_counter()
        self.starting_type = starting_agent.agent_type
        self.activation: Activation | None = None

    @property
    def act(self) -> Activation:
        assert self.activation is not None
        return self.activation

    # ---------------------------------------------------------------------------- activation

    async def activate(self, agent: LLMAgent, context: AgentContext) -> None:
        """Prepare ``agent`` to take its turn: bind its model, gather its tools, open its span."""
        self.context = context
        context.run_state = self.state
        llm, model = agent.bind_model(context)
        tools = agent.prepared_tools()
        handoffs = agent.prepared_handoffs()
        tool_map: dict[str, Tool] = {t.name: t for t in tools}
        offered = list(tools)
        for item in handoffs.values():
            offered.append(item.tool())
        output = agent.output_schema
        mode: Literal["native", "tool"] | None = None
        settings = agent.model_settings.to_kwargs()
        # Usage records say which agent made each call (an agent's own ``agent`` tag wins).
        settings["tags"] = {"agent": agent.name, **settings.get("tags", {})}
        if output is not None:
            mode = agent.output_mode_for(llm, model)
            if mode == "tool":
                offered.append(_output_tool(output))
                settings["tool_choice"] = "required"
        instructions = await agent.render_instructions(context)
        span = tracing.agent_span(
            agent.name, agent.agent_type, trace_id=self.state.run_id, enabled=self.config.tracing,
            tools=list(tool_map), handoffs=[h.agent.name for h in handoffs.values()],
            output_type=output.name if output is not None else None,
        )
        span.start()
        label = model if isinstance(model, str) else ",".join(model)
        self.activation = Activation(agent, context, llm, model, instructions, offered, tool_map, handoffs,
                                     output, mode, settings, span, label)

    def deactivate(self, status: str) -> None:
        activation = self.activation
        if activation is None:
            return
        if activation.span.recording:
            activation.span.data.status = status
        activation.span.end()
        self.activation = None

    # ----------------------------------------------------------------------------- guardrails

    async def check_input(self, guardrails: Sequence[InputGuardrail]) -> None:
        """Run the input guardrails once per run (concurrently); a trip stops the run."""
        state = self.state
        if state.input_checked:
            return
        state.input_checked = True
        if not guardrails:
            return
        text = self.context.input_text or _last_user_text(state.messages)
        await self._check(list(guardrails), "input", text)

    async def check_output(self, guardrails: Sequence[OutputGuardrail], output: Any) -> None:
        if guardrails:
            await self._check(list(guardrails), "output", output)

    async def _check(
        self, guardrails: list[InputGuardrail] | list[OutputGuardrail], kind: Literal["input", "output"], value: Any
    ) -> None:
        agent_name = self.act.agent.name
        context = self.context

        async def one(guardrail: InputGuardrail | OutputGuardrail) -> tuple[str, GuardrailResult]:
            span = tracing.guardrail_span(guardrail.name, kind, agent_name, trace_id=self.state.run_id,
                                          enabled=self.config.tracing)
            with span:
                verdict = await guardrail.check(context, value)
                if span.recording:
                    span.data.triggered = verdict.tripwire_triggered
            return guardrail.name, verdict

        verdicts = await asyncio.gather(*(one(g) for g in guardrails))
        tripped: GuardrailRecord | None = None
        for name, verdict in verdicts:
            record = GuardrailRecord(name, kind, agent_name, verdict.tripwire_triggered, verdict.info)
            self.state.guardrails.append(record)
            context.emit(GuardrailEvent(agent_name, name, kind, verdict.tripwire_triggered, verdict.info))
            if verdict.tripwire_triggered and tripped is None:
                tripped = record
        if tripped is not None:
            metrics.GUARDRAIL_TRIPS.labels(kind).inc()
            detail = f": {tripped.info}" if tripped.info not in (None, "") else ""
            raise GuardrailTripped(
                f"GuardrailTripped: the {kind} guardrail {tripped.name!r} of agent {agent_name!r} stopped run "
                f"{self.state.run_id}{detail}; the run's result so far is on this error's .result",
                guardrail=tripped.name, info=tripped.info,
            )

    # ----------------------------------------------------------------------------- the model

    async def call_model(self) -> Response:
        """One model call with the conversation so far; counts the turn, adds usage and cost."""
        act, state, config = self.act, self.state, self.config
        if state.turn >= state.max_turns:
            raise MaxTurnsExceeded(
                f"MaxTurnsExceeded: agent {act.agent.name!r} made {state.turn} model calls without a final "
                f"answer (run {state.run_id}); raise the limit with RunConfig(max_turns=...) or the agent's "
                "max_turns, or check that its tools give the model what it needs"
            )
        cap = config.max_cost_usd
        if cap is not None and state.cost_usd >= cap:
            raise BudgetExceededError(
                f"BudgetExceededError: run {state.run_id} has spent ${state.cost_usd:.6f} of its ${cap:.6f} cap "
                f"(RunConfig.max_cost_usd) after {state.turn} model calls; raise the cap or give the agent "
                "a smaller task",
                scope=f"run:{state.run_id}", limit_usd=cap, spent_usd=state.cost_usd,
            )
        messages = [Message.system(act.instructions), *state.messages] if act.instructions else state.messages
        request = act.llm.request(messages, tools=act.tools, output=act.request_output, **act.settings)
        span = tracing.generation_span(act.agent.name, act.model_label, trace_id=state.run_id,
                                       enabled=config.tracing)
        with span:
            if self.context.streaming:
                response = await self._stream(request)
            else:
                response = await act.llm.generate_request(act.model, request)
            if span.recording:
                data = span.data
                data.backend, data.response_model = response.provider, response.model
                data.finish_reason, data.usage = response.finish_reason, response.usage.to_dict()
                data.cost_usd, data.latency_ms = response.cost_usd, response.latency_ms
        state.turn += 1
        state.usage = state.usage + response.usage
        cost = response.cost_usd or 0.0
        state.cost_usd += cost
        state.backend, state.model = response.provider, response.model
        metrics.record_turn(self.starting_type, cost)
        if response.parts:
            state.messages.append(response.message)
        return response

    async def _stream(self, request: Any) -> Response:
        act = self.act
        stream = act.llm.stream_request(act.model, request)
        name = act.agent.name
        emit = self.context.emit
        async for event in stream:
            if event.kind == "text" and event.text:
                emit(TextDeltaEvent(name, event.text))
        assert stream.response is not None
        return stream.response

    # ----------------------------------------------------------------------------- the answer

    async def after_response(self, response: Response) -> Outcome:
        """Decide what the model's answer means: tools to run, or a final answer."""
        calls = response.tool_calls
        if calls:
            return await self.run_tool_calls(calls)
        return self.final_from_text(response.text)

    def final_from_text(self, text: str) -> Outcome:
        """A text answer is final; with an output type it must validate (else a bounded repair)."""
        output = self.act.output
        if output is None:
            return Outcome("final", text, text)
        try:
            value = output.parse(text)
        except OutputValidationError as error:
            self._count_repair(error, text)
            self.state.messages.append(Message.user(
                f"Your answer does not match the required output schema {output.name!r}: {error}. "
                "Answer again with only the JSON value, matching the schema exactly."
            ))
            return CONTINUE
        return Outcome("final", value, text)

    def _count_repair(self, error: OutputValidationError, raw: Any) -> None:
        state = self.state
        state.repairs += 1
        limit = self.config.max_output_repairs
        if state.repairs > limit:
            raise OutputValidationError(
                f"OutputValidationError: agent {self.act.agent.name!r} gave an answer that does not match its "
                f"output schema {self.act.output.name if self.act.output else ''!r} after {limit} repair(s) "
                f"(run {state.run_id}): {error}; simplify the schema, strengthen the instructions, raise "
                "RunConfig(max_output_repairs=...), or use a model with native structured output",
                raw=raw, errors=error.errors,
            ) from error

    # ----------------------------------------------------------------------------- the tools

    async def run_tool_calls(self, calls: Sequence[ToolCallPart]) -> Outcome:
        """Run a turn's tool calls and send the results back (or pause for approvals)."""
        act, state, context = self.act, self.state, self.context
        results: dict[str, ToolResultPart] = {p.call_id: p for p in state.done_results}
        first_record = len(state.tool_calls)

        output_call = next((c for c in calls if act.output_mode == "tool" and c.name == OUTPUT_TOOL), None)
        if output_call is not None and output_call.id not in results:
            final = self._final_from_output_call(output_call, calls, results)
            if final is not None:
                return final

        handoff_calls = [c for c in calls if c.name in act.handoffs]
        to_run: list[tuple[ToolCallPart, bool | None]] = []
        pending: list[ToolCallPart] = []
        for call in calls:
            if call is output_call or call.name in act.handoffs or call.id in results:
                continue
            tool = act.tool_map.get(call.name)
            decision = context.approvals.get(call.id)
            if decision is False:
                results[call.id] = self._rejected(call, context.approval_reasons.get(call.id))
            elif decision is True:
                to_run.append((call, True))
            elif isinstance(tool, FunctionTool) and _requires_approval(tool, call):
                pending.append(call)
            else:
                to_run.append((call, None))

        for part in await self._run_tools(to_run):
            results[part.call_id] = part

        if pending:
            state.done_results = [results[c.id] for c in calls if c.id in results]
            state.pending = [ApprovalRequest(c.id, c.name, dict(c.arguments), act.agent.name) for c in pending]
            context.emit(ApprovalRequiredEvent(act.agent.name, list(state.pending)))
            return Outcome("paused")

        chosen: Handoff | None = None
        chosen_call = ""
        for call in handoff_calls:
            if chosen is None:
                chosen, chosen_call = act.handoffs[call.name], call.id
                content = f"Transferred to {chosen.agent.name}; it takes over the conversation."
                results[call.id] = self._record(call, content, "handoff")
            else:
                content = "Error: only one handoff per turn; this one was ignored."
                results[call.id] = self._record(call, content, "skipped")

        # Concurrent calls finish in any order; the result lists them in the order the model asked.
        order = {c.id: i for i, c in enumerate(calls)}
        state.tool_calls[first_record:] = sorted(state.tool_calls[first_record:], key=lambda r: order.get(r.call_id, 0))
        state.messages.append(Message("tool", [cast(Part, results[c.id]) for c in calls]))
        state.done_results, state.pending = [], []
        context.approvals.clear()
        if chosen is not None:
            return Outcome("handoff", handoff=chosen, call_id=chosen_call)
        if output_call is not None:
            # The output call was invalid (its error went back with the results): that counts as a repair.
            error = OutputValidationError(results[output_call.id].content)
            self._count_repair(error, output_call.arguments)
        return CONTINUE

    def _final_from_output_call(
        self, output_call: ToolCallPart, calls: Sequence[ToolCallPart], results: dict[str, ToolResultPart]
    ) -> Outcome | None:
        """The output tool's arguments as the final answer; None (and an error result) if they do not validate."""
        output = self.act.output
        assert output is not None
        wrapped = output.json_schema.get("type") != "object"
        data = output_call.arguments.get("value") if wrapped else output_call.arguments
        try:
            value = output.validate(data, raw=output_call.arguments)
        except OutputValidationError as error:
            results[output_call.id] = self._record(
                output_call,
                f"Error: this answer does not match the output schema: {error}. Call {OUTPUT_TOOL} again with a "
                "corrected answer.",
                "error",
            )
            return None
        # The final answer ends the run; calls made beside it are answered but not run.
        parts: list[Part] = [self._record(output_call, "Final output accepted.", "output")]
        for call in calls:
            if call is not output_call:
                parts.append(self._record(call, "Not run: the final output was given in the same turn.", "skipped"))
        self.state.messages.append(Message("tool", parts))
        text = json.dumps(to_jsonable(data), ensure_ascii=False)
        return Outcome("final", value, text)

    async def _run_tools(self, to_run: list[tuple[ToolCallPart, bool | None]]) -> list[ToolResultPart]:
        if not to_run:
            return []
        if len(to_run) == 1:
            call, approved = to_run[0]
            return [await self._run_tool(call, approved)]
        limit = self.config.max_parallel_tools
        if limit is None or limit >= len(to_run):
            return list(await asyncio.gather(*(self._run_tool(c, a) for c, a in to_run)))
        semaphore = asyncio.Semaphore(limit)

        async def bounded(call: ToolCallPart, approved: bool | None) -> ToolResultPart:
            async with semaphore:
                return await self._run_tool(call, approved)

        return list(await asyncio.gather(*(bounded(c, a) for c, a in to_run)))

    async def _run_tool(self, call: ToolCallPart, approved: bool | None) -> ToolResultPart:
        """One tool call; every failure becomes an error result for the model, never a crash."""
        act, context = self.act, self.context
        tool = act.tool_map.get(call.name)
        context.emit(ToolCallEvent(act.agent.name, call.id, call.name, call.arguments))
        started = time.perf_counter()
        outcome: ToolOutcome = "ok"
        span = tracing.tool_span(call.name, call.id, act.agent.name, call.arguments, trace_id=self.state.run_id,
                                 enabled=self.config.tracing)
        with span:
            if tool is None:
                known = ", ".join(sorted(act.tool_map)) or "none"
                content = f"Error: there is no tool named {call.name!r}; the tools are: {known}."
                outcome = "unknown_tool"
            elif tool.function is None:
                content, outcome = f"Error: tool {call.name!r} has no implementation in this agent.", "error"
            else:
                timeout = tool.timeout if tool.timeout is not None else self.config.tool_timeout
                content, outcome = await self._invoke(tool, call, timeout)
            if span.recording:
                span.data.output, span.data.is_error = content, outcome != "ok"
                if outcome != "ok":
                    span.set_error(content)
        return self._record(call, content, outcome, approved=approved, started=started)

    async def _invoke(self, tool: Tool, call: ToolCallPart, timeout: float | None) -> tuple[str, ToolOutcome]:
        raw = call.arguments.get("_raw_arguments")
        if raw is not None and len(call.arguments) == 1:
            return (f"Error: the arguments for {call.name!r} are not valid JSON ({raw!r}); call it again with "
                    "a JSON object that matches its schema."), "invalid_arguments"
        try:
            tool.validate_arguments(call.arguments)
        except InvalidRequestError as error:
            return f"Error: {error}. Call it again with arguments that match its schema.", "invalid_arguments"
        invocation = (tool.invoke(call.arguments, self.context) if isinstance(tool, FunctionTool)
                      else tool.invoke(call.arguments))
        try:
            value = await (asyncio.wait_for(invocation, timeout) if timeout is not None else invocation)
        except TimeoutError:
            return (f"Error: tool {call.name!r} did not finish within {timeout:g}s and was abandoned; try other "
                    "arguments or another approach."), "timeout"
        except Exception as error:
            return f"Error: tool {call.name!r} failed: {type(error).__name__}: {_error_text(error)}", "error"
        return tool_output_text(value), "ok"

    def _rejected(self, call: ToolCallPart, reason: str | None = None) -> ToolResultPart:
        why = f" Their reason: {reason}" if reason else ""
        return self._record(call, f"Error: a human declined the call to {call.name!r}; do not retry it.{why}",
                            "rejected", approved=False)

    def _record(
        self, call: ToolCallPart, content: str, outcome: ToolOutcome, *, approved: bool | None = None,
        started: float | None = None,
    ) -> ToolResultPart:
        """Record a call's outcome (result, event, metrics) and return the part for the model."""
        agent = self.act.agent.name
        seconds = time.perf_counter() - started if started is not None else 0.0
        record = ToolCallRecord(call.id, call.name, dict(call.arguments), agent, content, outcome,
                                seconds * 1000.0, approved)
        self.state.tool_calls.append(record)
        is_error = record.is_error
        self.context.emit(ToolResultEvent(agent, call.id, call.name, content, is_error))
        if outcome not in ("handoff", "output"):
            metrics.record_tool_call(call.name, outcome, seconds)
        return ToolResultPart(call.id, call.name, content, is_error)

    # ----------------------------------------------------------------------------- handoffs

    def record_handoff(self, handoff: Handoff, call_id: str) -> list[Message]:
        """Record the handoff and return what the receiver sees of the conversation."""
        from_agent, to_agent = self.act.agent.name, handoff.agent.name
        self.state.handoffs.append(HandoffRecord(from_agent, to_agent, call_id))
        metrics.HANDOFFS.inc()
        with tracing.handoff_span(from_agent, to_agent, trace_id=self.state.run_id, enabled=self.config.tracing):
            self.context.emit(HandoffEvent(from_agent, to_agent))
        visible = handoff.filtered(self.state.messages)
        if handoff.input_filter is not None:
            # The receiver's view starts here: what it was handed counts as given, not produced.
            self.state.input_length = len(visible)
        return visible

    def merge_delegated(self, result: AgentResult) -> AgentResult:
        """Fold the result of a non-LLM agent that took over into the run's totals."""
        state = self.state
        result.run_id = state.run_id
        result.usage = state.usage + result.usage
        result.cost_usd = state.cost_usd + result.cost_usd
        result.tool_calls = [*state.tool_calls, *result.tool_calls]
        result.handoffs = [*state.handoffs, *result.handoffs]
        result.guardrails = [*state.guardrails, *result.guardrails]
        result.turns = state.turn + result.turns
        result.latency_ms = self.elapsed_ms()
        return result

    # ------------------------------------------------------------------------------- results

    def elapsed_ms(self) -> float:
        return self.state.elapsed_ms + (time.perf_counter() - self.started) * 1000.0

    def result(self, status: RunStatus, output: Any = None, text: str = "") -> AgentResult:
        state = self.state
        agent = self.activation.agent.name if self.activation is not None else state.agent
        paused = status == "paused"
        if paused:
            state.elapsed_ms = self.elapsed_ms()
        return AgentResult(
            output=output,
            text=text,
            agent=agent,
            run_id=state.run_id,
            status=status,
            messages=list(state.messages),
            new_messages_start=min(state.input_length, len(state.messages)),
            tool_calls=list(state.tool_calls),
            handoffs=list(state.handoffs),
            guardrails=list(state.guardrails),
            usage=state.usage,
            cost_usd=state.cost_usd,
            latency_ms=self.elapsed_ms(),
            backend=state.backend,
            model=state.model,
            turns=state.turn,
            pending_approvals=list(state.pending) if paused else [],
            state=state if paused else None,
        )

    def finish(self, status: RunStatus) -> None:
        """Close the active span and count the run."""
        self.deactivate(status)
        metrics.record_run(self.starting_type, status, self.elapsed_ms() / 1000.0)

    def fail(self, error: BaseException) -> None:
        """Attach the run so far to ``error`` (as ``error.result``) and close the books."""
        if self.activation is not None and self.activation.span.recording:
            self.activation.span.set_error(error)
        if isinstance(error, AgentAdapterError) and getattr(error, "result", None) is None:
            error.result = self.result("failed")  # type: ignore[attr-defined]
        self.finish("failed")


def _requires_approval(tool: FunctionTool, call: ToolCallPart) -> bool:
    try:
        return tool.requires_approval(dict(call.arguments))
    except Exception:
        # A rule that cannot decide (it choked on odd arguments) asks the human: the safe side.
        return True


def _output_tool(output: OutputSchema) -> Tool:
    schema = output.json_schema
    if schema.get("type") != "object":
        schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    return Tool(
        OUTPUT_TOOL,
        f"Give your final answer by calling this tool; its arguments are the answer ({output.name}).",
        schema,
    )


def _last_user_text(messages: Sequence[Message]) -> str:
    return next((m.text for m in reversed(messages) if m.role == "user"), "")
