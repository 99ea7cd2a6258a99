"""``Orchestrator``: runs a set of agents on a task under a strategy, and ``RunHandle``: a run in progress.

``await Orchestrator().run(task, agents, strategy)`` returns a :class:`RunResult` - it never raises
for a run that failed or hit a limit; the status and ``error`` say so. :meth:`Orchestrator.start`
returns a :class:`RunHandle` at once: iterate it for the run's :class:`RunEvent` s, ``cancel()`` it,
``await handle.wait()`` for the result. Each run gets its own communication protocol (in-process
unless ``AGENTADAPTER_REDIS_URL`` is set), bound to the run id, so its agents can message each other
and share state; the run's :class:`RunRecorder`, if any, receives its records. Workflows from YAML
run through :meth:`Orchestrator.run_workflow`. Each agent step runs inline, or - given a
``step_executor`` (:class:`~agentadapter.orchestrator.steps.StepExecutor`) - is handed to it and
its outcome taken into the run. The steps themselves are in ``_run.py`` and ``_strategies.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.context import AgentInput
from agentadapter.llm.errors import InvalidRequestError
from agentadapter.orchestrator._run import RunEngine
from agentadapter.orchestrator._strategies import runner_for
from agentadapter.orchestrator.events import EventListener, EventLog, RunEvent
from agentadapter.orchestrator.options import RunOptions
from agentadapter.orchestrator.result import RunResult, RunStatus
from agentadapter.orchestrator.strategies import Strategy, coerce_strategy

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM
    from agentadapter.orchestrator.recorder import RunRecorder
    from agentadapter.orchestrator.steps import StepExecutor
    from agentadapter.orchestrator.workflow import Workflow
    from agentadapter.protocol.protocol import CommunicationProtocol

__all__ = ["Orchestrator", "ProtocolFactory", "RunHandle"]

ProtocolFactory = Callable[[str], "CommunicationProtocol"]
"""Makes the protocol of a run from its id (default: ``create_protocol(run_id=...)``)."""


class RunHandle:
    """A run in progress: its events, its result once done, and a way to cancel it."""

    def __init__(self, engine: RunEngine, task: asyncio.Task[RunResult]) -> None:
        self._engine = engine
        self._task = task

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, status={self.status!r})"

    @property
    def run_id(self) -> str:
        return self._engine.run_id

    @property
    def status(self) -> RunStatus:
        return self._engine.result.status

    @property
    def result(self) -> RunResult | None:
        """The final result, once the run has ended."""
        return self._engine.result if self._task.done() and not self._task.cancelled() else None

    @property
    def snapshot(self) -> RunResult:
        """The result as it stands (status ``running`` while the run goes)."""
        return self._engine.result

    def done(self) -> bool:
        return self._task.done()

    def events(self, after: int = 0) -> AsyncIterator[RunEvent]:
        """The run's events with ``seq > after``: those so far, then live ones, until ``run_finished``."""
        return self._engine.log.subscribe(after)

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self.events()

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every event from now on (synchronously; it must not block)."""
        self._engine.log.add_listener(listener)

    def cancel(self, reason: str = "the run was cancelled") -> bool:
        """Cancel the run: running agents are cancelled, the result gets status ``cancelled``.

        Returns False when the run had already ended.
        """
        if self._task.done():
            return False
        engine = self._engine
        if not engine.cancel_requested:
            engine.cancel_requested = True
            engine.cancel_reason = reason
            if engine.result.status != "queued":
                self._task.cancel()
            # else: the run has not started; it sees the request first thing and ends as cancelled.
        return True

    async def wait(self) -> RunResult:
        """The final result. Cancelling the caller does not cancel the run (use :meth:`cancel`)."""
        return await asyncio.shield(self._task)

    def __await__(self) -> Generator[Any, None, RunResult]:
        return self.wait().__await__()


class Orchestrator:
    """Runs agents under a strategy: sequential, parallel, adaptive or loop.

    ``llm`` is the facade every model call goes through (default: the shared ``LLM()``);
    ``recorder`` persists runs; ``protocol_factory`` makes each run's protocol; ``options`` are the
    defaults for runs that pass none; ``step_executor`` runs every agent step instead of this
    process (a queue), returning each step's outcome once it exists.
    """

    def __init__(
        self,
        *,
        llm: LLM | None = None,
        recorder: RunRecorder | None = None,
        protocol_factory: ProtocolFactory | None = None,
        options: RunOptions | None = None,
        step_executor: StepExecutor | None = None,
    ) -> None:
        self.llm = llm
        self.step_executor = step_executor
        self.recorder = recorder
        self.protocol_factory = protocol_factory
        self.options = options if options is not None else RunOptions()
        self._runs: dict[str, RunHandle] = {}

    # ------------------------------------------------------------------------------- runs

    async def run(
        self,
        task: AgentInput,
        agents: Sequence[BaseAgent] | Mapping[str, BaseAgent],
        strategy: Strategy | str = "sequential",
        project_id: str | None = None,
        *,
        options: RunOptions | None = None,
        on_event: EventListener | None = None,
    ) -> RunResult:
        """Run ``agents`` on ``task`` under ``strategy`` and return the result.

        A run that fails, hits a limit or is cancelled through its handle returns a result with that
        status; a bad strategy or agent set raises (InvalidRequestError) before anything runs.
        Cancelling the caller cancels the run too (and re-raises CancelledError).
        """
        handle = self.start(task, agents, strategy, project_id, options=options, on_event=on_event)
        return await self._wait_cancelling(handle)

    def start(
        self,
        task: AgentInput,
        agents: Sequence[BaseAgent] | Mapping[str, BaseAgent],
        strategy: Strategy | str = "sequential",
        project_id: str | None = None,
        *,
        options: RunOptions | None = None,
        on_event: EventListener | None = None,
        workflow: str | None = None,
    ) -> RunHandle:
        """Start a run in the background (needs a running event loop) and return its handle."""
        chosen = coerce_strategy(strategy)
        named = _named_agents(agents)
        chosen.check(list(named))
        options = options if options is not None else self.options
        run_id = options.run_id or uuid.uuid4().hex
        if run_id in self._runs:
            raise InvalidRequestError(f"run {run_id} is already running; give each run its own run_id")
        if task in ("", [], ()):
            raise InvalidRequestError("a run needs a task: pass a prompt or messages as task=")
        protocol, owns = self._protocol(run_id)
        log = EventLog(run_id, keep=options.keep_events,
                       first_seq=options.resume.last_seq if options.resume is not None else 0)
        if on_event is not None:
            log.add_listener(on_event)
        engine = RunEngine(
            run_id=run_id, task=task, agents=named, strategy=chosen, options=options, llm=self.llm,
            protocol=protocol, owns_protocol=owns, recorder=self.recorder, log=log, project_id=project_id,
            workflow=workflow, executor=self.step_executor,
        )
        task_ = asyncio.get_running_loop().create_task(engine.execute(runner_for(chosen)), name=f"run:{run_id}")
        handle = RunHandle(engine, task_)
        self._runs[run_id] = handle
        task_.add_done_callback(lambda _: self._runs.pop(run_id, None))
        return handle

    async def run_workflow(
        self,
        workflow: Workflow | str | Path,
        input: AgentInput | None = None,
        project_id: str | None = None,
        *,
        options: RunOptions | None = None,
        on_event: EventListener | None = None,
    ) -> RunResult:
        """Run a workflow (a :class:`Workflow`, or the path of its YAML file) on ``input``."""
        handle = self.start_workflow(workflow, input, project_id, options=options, on_event=on_event)
        return await self._wait_cancelling(handle)

    def start_workflow(
        self,
        workflow: Workflow | str | Path,
        input: AgentInput | None = None,
        project_id: str | None = None,
        *,
        options: RunOptions | None = None,
        on_event: EventListener | None = None,
    ) -> RunHandle:
        """Start a workflow run in the background and return its handle.

        ``input`` defaults to the workflow's own ``input:``; ``options`` default to the workflow's
        limits, retries and timeouts.
        """
        from agentadapter.orchestrator.workflow import Workflow, load_workflow

        spec = workflow if isinstance(workflow, Workflow) else load_workflow(workflow)
        task = input if input is not None else spec.input
        if task is None or task == "":
            raise InvalidRequestError(
                f"workflow {spec.name!r} needs an input: pass input= (the CLI's --input) or set input: in the file"
            )
        return self.start(task, spec.agents, spec.strategy, project_id,
                          options=options if options is not None else spec.options, on_event=on_event,
                          workflow=spec.name)

    # --------------------------------------------------------------------------- management

    def get(self, run_id: str) -> RunHandle | None:
        """The handle of a run still going in this orchestrator."""
        return self._runs.get(run_id)

    def cancel(self, run_id: str, reason: str = "the run was cancelled") -> bool:
        """Cancel a running run by id; False when no such run is going here."""
        handle = self._runs.get(run_id)
        return handle.cancel(reason) if handle is not None else False

    @property
    def active(self) -> list[str]:
        """Ids of the runs going on now."""
        return list(self._runs)

    # ----------------------------------------------------------------------------- internals

    def _protocol(self, run_id: str) -> tuple[CommunicationProtocol, bool]:
        if self.protocol_factory is not None:
            return self.protocol_factory(run_id), True
        from agentadapter.protocol.protocol import create_protocol

        return create_protocol(run_id=run_id), True

    @staticmethod
    async def _wait_cancelling(handle: RunHandle) -> RunResult:
        try:
            return await handle.wait()
        except asyncio.CancelledError:
            handle.cancel("the caller was cancelled")
            with contextlib.suppress(BaseException):
                await handle._task
            raise


def _named_agents(agents: Sequence[BaseAgent] | Mapping[str, BaseAgent]) -> dict[str, BaseAgent]:
    if isinstance(agents, Mapping):
        items: list[tuple[Any, Any]] = list(agents.items())
    else:
        items = [(getattr(agent, "name", None), agent) for agent in agents]
    named: dict[str, BaseAgent] = {}
    for key, agent in items:
        if not isinstance(agent, BaseAgent):
            raise InvalidRequestError(
                f"a run's agents must be BaseAgent instances (LLMAgent, a custom class), not {type(agent).__name__}"
            )
        if key != agent.name:
            raise InvalidRequestError(f"the agent under key {key!r} is named {agent.name!r}; use its name as the key")
        if agent.name in named:
            raise InvalidRequestError(f"two agents of the run are named {agent.name!r}; agent names must be unique")
        named[agent.name] = agent
    if not named:
        raise InvalidRequestError("a run needs at least one agent")
    return named
