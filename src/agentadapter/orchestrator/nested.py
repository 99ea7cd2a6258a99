"""Nested workflows: a whole workflow run as one agent, so that it can be a step of another or a tool.

:class:`WorkflowAgent` runs its workflow on the step's input, with a run of its own, and answers with
that run's output. What the parent run sees:

- **events**: every event of the nested run reaches the parent as a ``nested`` run event (its
  ``data.event`` is the nested run's event as JSON); its tokens stream as ``token`` events of agent
  ``<step agent>/<nested agent>`` (never stored, as tokens never are);
- **usage and cost**: the nested run's totals are the step's, so they add up in the parent's totals
  and count against its ``max_cost_usd`` (the nested run may spend only what the parent has left);
  a nested run that fails still charges what it spent (the error carries it, as an agent's does);
- **limits**: the nested workflow's own limits hold inside it; the parent's step timeout and
  cancellation cancel the nested run.

``BaseAgent.as_tool`` turns a WorkflowAgent into a tool another agent's model calls with a text input
(:func:`workflow_tool`). Workflow files name nested workflows with ``workflow: other.yaml`` in an
agent entry (:mod:`.workflow` resolves them, refusing cycles); the service's builder resolves a
tenant's ``workflow: <stored workflow id or name>`` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.events import NestedRunEvent
from agentadapter.agents.result import AgentResult
from agentadapter.orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from agentadapter.agents.context import AgentContext
    from agentadapter.agents.tools.decorator import FunctionTool
    from agentadapter.orchestrator.events import RunEvent
    from agentadapter.orchestrator.options import RunOptions
    from agentadapter.orchestrator.result import RunResult
    from agentadapter.orchestrator.workflow import Workflow

__all__ = ["NestedRunFailed", "WorkflowAgent", "workflow_tool"]


class NestedRunFailed(OrchestratorError):
    """The workflow a step (or tool) ran did not complete; ``run`` is its result, ``result`` what it spent."""

    def __init__(self, message: str, *, run: RunResult) -> None:
        super().__init__(message)
        self.run = run
        # The engine charges a failed attempt's partial result, so the nested run's spending is not lost.
        self.result = AgentResult(output=run.output, usage=run.usage, cost_usd=run.cost_usd, status="failed")


class WorkflowAgent(BaseAgent):
    """A workflow run as one agent (see the module docstring)."""

    agent_type: ClassVar[str] = "workflow"

    def __init__(
        self,
        name: str,
        workflow: Workflow,
        *,
        agents: Mapping[str, BaseAgent] | None = None,
        options: RunOptions | None = None,
        description: str = "",
    ) -> None:
        super().__init__(name)
        self.workflow = workflow
        self._agents = dict(agents) if agents is not None else None
        self.options = options
        self._description = description or workflow.spec.description or f"runs workflow {workflow.name!r}"

    @property
    def description(self) -> str:
        return self._description

    @property
    def agents(self) -> dict[str, BaseAgent]:
        """The nested workflow's agents (built from its spec when none were given)."""
        return self._agents if self._agents is not None else self.workflow.agents

    async def execute(self, context: AgentContext) -> AgentResult:
        from agentadapter.orchestrator.orchestrator import Orchestrator

        options = self.options if self.options is not None else self.workflow.options
        budget = context.config.max_cost_usd
        if budget is not None and (options.limits.max_cost_usd is None or options.limits.max_cost_usd > budget):
            options = options.with_limits(max_cost_usd=budget)  # the parent's remaining budget bounds it
        workflow_name = self.workflow.name

        def forward(event: RunEvent) -> None:
            context.emit(NestedRunEvent(self.name, workflow_name, event.to_dict()))

        orchestrator = Orchestrator(llm=context.config.llm, options=options)
        handle = orchestrator.start(
            context.input,
            self.agents,
            self.workflow.strategy,
            options=options,
            on_event=forward,
            workflow=workflow_name,
        )
        run = await orchestrator._wait_cancelling(handle)
        if run.status != "completed":
            error = (run.error or {}).get("message") or run.status
            raise NestedRunFailed(
                f"nested workflow {workflow_name!r} (step {self.name!r}) ended {run.status}: {error}", run=run
            )
        text = run.output if isinstance(run.output, str) else ""
        return AgentResult(
            output=run.output,
            text=text,
            agent=self.name,
            usage=run.usage,
            cost_usd=run.cost_usd,
            latency_ms=run.duration_ms,
        )


def workflow_tool(agent: WorkflowAgent, name: str | None = None, description: str | None = None) -> FunctionTool:
    """A tool that runs the workflow on the text the calling model passes (its usage and cost count
    toward the caller's run)."""
    return agent.as_tool(name or agent.name, description or agent.description)
