"""``AgentContext``: what an agent sees of its run.

A context gives an agent its run id, its input and prior history, the run's :class:`RunConfig`, the
caller's dependencies (``deps``, any object), the LLM facade, and the communication protocol: send,
ask, broadcast, publish, subscribe and receive messages, the run's shared state and the agent's
private namespace. The protocol is created on first use (in-process unless
``AGENTADAPTER_REDIS_URL`` is set), so a plain ``agent.run("...")`` needs no set-up, and the
orchestrator passes the run's protocol in :attr:`RunConfig.protocol` instead. Contexts for the
agents a run hands off to, or calls as tools, share the run's protocol, config, deps and event sink
(:meth:`AgentContext.for_agent`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from agentadapter.agents.run_config import RunConfig
from agentadapter.llm.messages import Message, TextPart, coerce_messages

if TYPE_CHECKING:
    from agentadapter.agents.base import BaseAgent
    from agentadapter.agents.events import AgentEvent
    from agentadapter.agents.result import AgentResult, RunState
    from agentadapter.llm.client import LLM
    from agentadapter.protocol.context import SharedContext
    from agentadapter.protocol.envelope import Envelope
    from agentadapter.protocol.protocol import AgentChannel, CommunicationProtocol

__all__ = ["AgentContext", "AgentInput", "default_llm", "input_text"]

AgentInput: TypeAlias = str | Message | Sequence[Message | Mapping[str, Any] | str]

_DEFAULT_LLM: LLM | None = None
_DEFAULT_LLM_LOCK = threading.Lock()


def default_llm() -> LLM:
    """The shared ``LLM()`` (environment + agentadapter.yaml) used when a run names none."""
    global _DEFAULT_LLM
    with _DEFAULT_LLM_LOCK:
        if _DEFAULT_LLM is None:
            from agentadapter.llm.client import LLM

            _DEFAULT_LLM = LLM()
        return _DEFAULT_LLM


def input_text(messages: Iterable[Message]) -> str:
    """The user text of some messages, joined by blank lines (what guardrails and sub-agents read)."""
    return "\n\n".join(
        "".join(p.text for p in m.parts if isinstance(p, TextPart)) for m in messages if m.role == "user"
    ).strip()


class _RunShared:
    """What every context of one run shares: the protocol (created once), and the event sink."""

    __slots__ = ("owns_protocol", "protocol", "sink")

    def __init__(self, protocol: CommunicationProtocol | None) -> None:
        self.protocol = protocol
        self.owns_protocol = False
        self.sink: Callable[[AgentEvent], None] | None = None


@dataclass(eq=False)
class AgentContext:
    """An agent's view of its run: input, history, config, deps, messaging and shared state."""

    agent: BaseAgent
    """The agent this context belongs to."""
    input: AgentInput = ""
    """The input as the caller gave it (a string, a message, or a list of messages)."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """The run's id: the trace id, and the namespace of the run's messages and state."""
    history: list[Message] = field(default_factory=list)
    """Conversation that came before the input (e.g. earlier agents' outputs in a workflow)."""
    config: RunConfig = field(default_factory=RunConfig)
    deps: Any = None
    """Whatever the caller passed as ``deps=``: a database handle, a user, ... for tools to use."""
    run_state: RunState | None = None
    """The agent loop's state (set by the loop; given back on resume)."""
    approvals: dict[str, bool] = field(default_factory=dict)
    """Decisions on paused tool calls, by call id (given to ``resume``)."""
    approval_reasons: dict[str, str] = field(default_factory=dict)
    """Why a human decided as they did, by call id (a rejected call's reason is shown to the model)."""
    _shared: _RunShared = field(init=False, repr=False)
    _channel: AgentChannel | None = field(default=None, init=False, repr=False)
    _messages: list[Message] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.config.run_id and self.run_id != self.config.run_id:
            self.run_id = self.config.run_id
        self._shared = _RunShared(self.config.protocol)

    # ---------------------------------------------------------------------------- the run

    @property
    def agent_name(self) -> str:
        return self.agent.name

    @property
    def messages(self) -> list[Message]:
        """The input as neutral messages (history not included)."""
        if self._messages is None:
            self._messages = coerce_messages(self.input) if self.input not in ("", [], ()) else []
        return self._messages

    @property
    def input_text(self) -> str:
        """The user text of the input."""
        return input_text(self.messages)

    @property
    def llm(self) -> LLM:
        """The facade model calls go through (``RunConfig.llm``, else the shared ``LLM()``)."""
        return self.config.llm if self.config.llm is not None else default_llm()

    def for_agent(self, agent: BaseAgent, input: AgentInput | None = None) -> AgentContext:
        """A context for another agent of the same run (a handoff's receiver, an agent used as a tool)."""
        child = AgentContext(
            agent,
            input=self.input if input is None else input,
            run_id=self.run_id,
            history=[] if input is not None else list(self.history),
            config=self.config,
            deps=self.deps,
        )
        child._shared = self._shared
        return child

    async def run_agent(self, agent: BaseAgent, input: AgentInput) -> AgentResult:
        """Run another agent inside this run; its usage and cost count toward this run's totals."""
        result = await agent.execute(self.for_agent(agent, input))
        state = self.run_state
        if state is not None:
            state.usage = state.usage + result.usage
            state.cost_usd += result.cost_usd
        return result

    # ------------------------------------------------------------------------------ events

    def emit(self, event: AgentEvent) -> None:
        """Hand an event to ``run_stream``'s consumer (a no-op when nobody streams)."""
        sink = self._shared.sink
        if sink is not None:
            sink(event)

    @property
    def streaming(self) -> bool:
        return self._shared.sink is not None

    # ---------------------------------------------------------------------------- protocol

    @property
    def protocol(self) -> CommunicationProtocol:
        """The run's protocol (created in this process on first use when the run was given none)."""
        shared = self._shared
        if shared.protocol is None:
            from agentadapter.protocol.protocol import create_protocol

            shared.protocol = create_protocol(run_id=self.run_id)
            shared.owns_protocol = True
        return shared.protocol

    @property
    def state(self) -> SharedContext:
        """The run's shared state (every agent of the run reads and writes it)."""
        return self.protocol.context

    @property
    def private(self) -> SharedContext:
        """This agent's own namespace of the shared state."""
        return self.protocol.context.namespace(self.agent_name)

    async def channel(self) -> AgentChannel:
        """This agent's channel; the agent joins the run (inbox + registry) on first use."""
        if self._channel is None:
            agent = self.agent
            self._channel = await self.protocol.join(
                agent.name, agent.capabilities, agent_type=agent.agent_type
            )
        return self._channel

    async def send(self, to: str, payload: Any = None, **options: Any) -> Envelope:
        """Send ``payload`` to agent ``to`` (options: ``type``, ``priority``, ``ttl_s``, ``headers``)."""
        return await (await self.channel()).send(to, payload, **options)

    async def ask(self, to: str, payload: Any = None, *, timeout: float | None = None) -> Any:
        """Ask agent ``to`` and wait for its answer's payload."""
        return await (await self.channel()).ask(to, payload, timeout=timeout)

    async def reply(self, request: Envelope, payload: Any = None, *, error: bool = False) -> Envelope:
        """Answer a request this agent received."""
        return await (await self.channel()).reply(request, payload, error=error)

    async def broadcast(self, payload: Any = None, **options: Any) -> Envelope:
        """Send ``payload`` to every other agent that joined the run."""
        return await (await self.channel()).broadcast(payload, **options)

    async def publish(self, topic: str, payload: Any = None, **options: Any) -> Envelope:
        """Publish ``payload`` on ``topic``."""
        return await (await self.channel()).publish(topic, payload, **options)

    async def subscribe(self, pattern: str) -> None:
        """Receive what is published on topics matching ``pattern`` (``*`` one segment, ``#`` any)."""
        await (await self.channel()).subscribe(pattern)

    async def receive(self, max_messages: int = 100, timeout: float | None = 0.0) -> list[Envelope]:
        """Take this agent's waiting messages, highest priority first."""
        return await (await self.channel()).receive(max_messages, timeout)

    async def aclose(self) -> None:
        """Close the protocol if this run created it (a run given a protocol leaves it open)."""
        shared = self._shared
        if shared.owns_protocol and shared.protocol is not None:
            protocol, shared.protocol, shared.owns_protocol = shared.protocol, None, False
            await protocol.close()
