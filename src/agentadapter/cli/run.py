"""``agentadapter run WORKFLOW.yaml --input "..."``: run a workflow from the command line.

A thin shell over :class:`~agentadapter.orchestrator.Orchestrator`: it loads and validates the
workflow (every problem named with its YAML path and line, every unusable model listed), runs it,
and shows it. By default it shows live progress on stderr - one line per agent step with its status,
tokens, cost and time, wrapping on a narrow terminal - then a final table on stderr (laid out by
:mod:`.tables`; an agent whose models have no known price costs ``unknown``) and the run's output on
stdout; ``--json`` prints the ``RunResult`` instead,
``--events`` prints every run event as a JSON line as it happens. ``--model`` runs the workflow's
inline agents on another model (``--model openai/gpt-4o-mini``, or ``--model writer=...``), so the
offline examples run on real providers unchanged. Exit codes: 0 the run completed, 1 it failed or
was cancelled, 2 a usage error (bad workflow, missing input, unknown model), 130 interrupted.
``register(app)`` adds the command to a typer app.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from agentadapter.cli.tables import Cell, Column, show_table, usd
from agentadapter.llm.errors import AgentAdapterError, ConfigurationError, InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.orchestrator import RunEvent, RunResult

__all__ = ["register", "run_workflow_command"]

EXIT_RUN_FAILED = 1
EXIT_USAGE_ERROR = 2
EXIT_INTERRUPTED = 130

_STATUS_STYLE = {"running": "yellow", "completed": "green", "failed": "red", "cancelled": "dim", "retrying": "magenta"}
_STATUS_ICON = {"completed": "✓", "failed": "✗", "cancelled": "-"}


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""
    app.command("run")(run_workflow_command)


def run_workflow_command(
    workflow: Annotated[Path, typer.Argument(help="the workflow file (YAML)", show_default=False)],
    input: Annotated[
        str | None,
        typer.Option("--input", "-i", help="the task ('-' reads standard input; default: the file's input:)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the RunResult as JSON")] = False,
    events: Annotated[bool, typer.Option("--events", help="print every run event as a JSON line")] = False,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="run inline agents on MODEL, or one agent with AGENT=MODEL (repeatable)"),
    ] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0.0, help="cost cap in USD")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="agent steps allowed")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.0, help="deadline of the run, seconds")] = None,
    project: Annotated[str | None, typer.Option("--project", help="project id to record the run under")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="agentadapter.yaml to use (default: ./agentadapter.yaml)")
    ] = None,
    agents: Annotated[
        list[Path] | None,
        typer.Option("--agents", help="a directory of custom agent modules, named as type: <agent> (repeatable)"),
    ] = None,
) -> None:
    """Run a workflow: live progress per agent, then a table and the output."""
    from agentadapter.llm.client import LLM
    from agentadapter.orchestrator import load_workflow

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    try:
        _load_custom_agents(agents, err)
        spec = load_workflow(workflow, mcp_servers=_config_mcp_servers(config))
        for warning in spec.warnings:
            err.print(f"[yellow]warning:[/] {escape(warning)}", markup=True, highlight=False)
        if model:
            spec = spec.with_models(_model_overrides(model))
        task = sys.stdin.read() if input == "-" else input
        if task is None:
            task = spec.input
        if not task:
            raise InvalidRequestError(
                f"workflow {spec.name!r} has no input: pass --input \"...\" (or set input: in the file)"
            )
        options = spec.options
        changes = {k: v for k, v in {"max_cost_usd": max_cost, "max_steps": max_steps, "timeout_s": timeout}.items()
                   if v is not None}
        if changes:
            options = options.with_limits(**changes)
        llm = LLM(config=config)
        _check_models(llm, spec.agents)
    except AgentAdapterError as error:
        err.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False)
        raise typer.Exit(EXIT_USAGE_ERROR if isinstance(error, ConfigurationError | InvalidRequestError)
                         else EXIT_RUN_FAILED) from None
    mode = "events" if events else "json" if as_json else "live"
    unpriced = _unpriced_agents(llm, spec.agents)
    result, interrupted = asyncio.run(_run(llm, spec, task, options, project, mode, err, unpriced))
    if events and as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    elif as_json:
        out.print_json(json.dumps(result.to_dict()))
    elif not events:
        _print_summary(err, out, result, unpriced)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.status != "completed":
        raise typer.Exit(EXIT_RUN_FAILED)


def _config_mcp_servers(config: Path | None) -> list[dict[str, Any]]:
    """The MCP servers agentadapter.yaml declares (the workflow's agents may name them)."""
    from agentadapter.config import find_config_file, load_config_file

    path = find_config_file(config)
    return list(load_config_file(path).mcp_servers) if path is not None else []


def _load_custom_agents(directories: list[Path] | None, err: Console) -> None:
    """The operator's custom agents (AGENTADAPTER_AGENTS_DIRS, --agents) become types the workflow may name."""
    from agentadapter.config import get_settings

    if not directories and not get_settings().agents_dirs:
        return
    from agentadapter.cli.agents import operator_loader

    loader = operator_loader(directories)
    loader.register_types()
    for error in loader.errors:
        err.print(f"[yellow]warning:[/] custom agents: {escape(error.source)}: {escape(error.error)}", markup=True,
                  highlight=False)


def _model_overrides(values: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for value in values:
        agent, sep, model = value.partition("=")
        if sep and "/" not in agent:
            overrides[agent.strip()] = model.strip()
        else:
            overrides["*"] = value.strip()
    return overrides


def _check_models(llm: Any, agents: dict[str, Any]) -> None:
    """Resolve every LLM agent's model now, so missing keys or unknown providers are a usage error up
    front, all of them in one message."""
    from agentadapter.agents.llm_agent import LLMAgent
    from agentadapter.agents.run_config import RunConfig

    problems: list[tuple[str, AgentAdapterError]] = []
    for name, agent in agents.items():
        agent = _model_agent(agent)
        if isinstance(agent, LLMAgent):
            try:
                bound_llm, model = agent.bind_model(agent.make_context("", RunConfig(llm=llm)))
                bound_llm.resolver.route(model)
            except AgentAdapterError as error:
                problems.append((name, error))
    if len(problems) == 1:
        raise problems[0][1]
    if problems:
        usage = all(isinstance(error, ConfigurationError | InvalidRequestError) for _, error in problems)
        kind = ConfigurationError if usage else AgentAdapterError
        raise kind("the workflow's models cannot all be used:\n" + "\n".join(
            f"  agent {name!r}: {error}" for name, error in problems))


async def _run(llm: Any, spec: Any, task: str, options: Any, project: str | None, mode: str,
               err: Console, unpriced: AbstractSet[str]) -> tuple[RunResult, bool]:
    from agentadapter.orchestrator import InMemoryRunRecorder, Orchestrator

    orchestrator = Orchestrator(llm=llm, recorder=InMemoryRunRecorder())
    view = _Progress(unpriced)
    listener = _EventPrinter() if mode == "events" else view.on_event if mode == "live" else None
    interrupted = False
    try:
        handle = orchestrator.start_workflow(spec, task, project, options=options, on_event=listener)
        live = Live(view, console=err, refresh_per_second=8, transient=False) if mode == "live" else None
        if live is not None:
            live.start()
        try:
            result = await handle.wait()
        except asyncio.CancelledError:  # Ctrl-C: cancel the run and show what it did
            interrupted = True
            handle.cancel("interrupted from the keyboard")
            result = await handle.wait()
        finally:
            if live is not None:
                live.stop()
                if not err.is_terminal:
                    err.line()
    finally:
        await llm.aclose()
    return result, interrupted


class _EventPrinter:
    """Writes each event as a JSON line; stops quietly when the reader goes away (``| head``)."""

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, event: RunEvent) -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self.closed = True


# ------------------------------------------------------------------------------------ live view


@dataclass
class _Row:
    step: int
    agent: str
    phase: str
    status: str = "running"
    chars: int = 0
    tokens: int | None = None
    cost_usd: float = 0.0
    started: float = 0.0
    seconds: float | None = None
    note: str = ""


class _Progress:
    """One line per agent step, updated from the run's events."""

    def __init__(self, unpriced: AbstractSet[str] = frozenset()) -> None:
        self.unpriced = unpriced
        self.rows: dict[int, _Row] = {}
        self.running: dict[str, int] = {}
        """Agent name -> its running step (handoff receivers map to the step that handed off)."""
        self.finished = ""

    def on_event(self, event: RunEvent) -> None:
        data, agent = event.data, event.agent or ""
        kind = event.type
        if kind == "agent_started":
            step = int(data["step"])
            row = self.rows.get(step)
            if row is None:
                row = self.rows[step] = _Row(step, agent, str(data.get("phase", "run")), started=time.monotonic())
                row.note = str(data.get("via") or "")
            row.status = "running"
            self.running[agent] = step
        elif kind == "token":
            step_of = self.running.get(agent)
            if step_of is not None:
                self.rows[step_of].chars += len(data.get("text", ""))
        elif kind == "handoff":
            step_of = self.running.get(str(data.get("from_agent")))
            if step_of is not None:
                self.running[str(data.get("to_agent"))] = step_of
                self.rows[step_of].note = f"handed off to {data.get('to_agent')}"
        elif kind in ("agent_finished", "agent_failed", "agent_cancelled", "agent_retried"):
            row = self.rows.get(int(data["step"]))
            if row is None:
                return
            if kind == "agent_retried":
                row.status, row.note = "retrying", f"attempt {data['attempt']} failed: {data['error']['type']}"
                return
            row.status = {"agent_finished": "completed", "agent_failed": "failed"}.get(kind, "cancelled")
            row.seconds = time.monotonic() - row.started
            if kind == "agent_finished":
                usage = data.get("usage") or {}
                row.tokens, row.cost_usd = int(usage.get("total_tokens", 0)), float(data.get("cost_usd") or 0.0)
            elif kind == "agent_failed":
                row.note = str(data["error"]["message"])[:120]
            else:
                row.note = str(data.get("reason", ""))[:120]
        elif kind == "run_finished":
            self.finished = str(data.get("status"))

    def __rich__(self) -> Group:
        lines: list[Any] = []
        for row in list(self.rows.values()):
            style = _STATUS_STYLE.get(row.status, "")
            icon: Any = Spinner("dots", style=style) if row.status in ("running", "retrying") else Text(
                _STATUS_ICON.get(row.status, "·"), style=style)
            seconds = row.seconds if row.seconds is not None else time.monotonic() - row.started
            tokens = f"{row.tokens} tok" if row.tokens is not None else f"~{row.chars // 4} tok"
            # Two columns: the icon, then the step as one text that wraps at word boundaries under
            # itself on a narrow terminal, rather than a cell each cut short at the edge.
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column()
            cost = f" {_cost(row.cost_usd, row.agent in self.unpriced)}" if row.status == "completed" else ""
            line = Text.assemble((f"#{row.step} {row.agent}", "bold"), " ", (row.phase, "dim"), " ",
                                 (row.status, style), f" {tokens}{cost} {seconds:.1f}s")
            if row.note:
                line.append(f" {row.note}", style="dim")
            grid.add_row(icon, line)
            lines.append(grid)
        return Group(*lines)


def _total_cost(result: RunResult, unpriced: AbstractSet[str]) -> str:
    if not any((agent.answered_by or agent.name) in unpriced and not agent.cost_usd for agent in result.agents):
        return usd(result.cost_usd)
    return f"{usd(result.cost_usd)} + unknown" if result.cost_usd else "unknown"


def _model_agent(agent: Any) -> Any:
    """The LLM agent inside an agent that wraps one (an MCPAgent), else the agent itself."""
    from agentadapter.agents.tools.mcp_config import MCPAgent

    return agent.agent if isinstance(agent, MCPAgent) else agent


def _unpriced_agents(llm: Any, agents: dict[str, Any]) -> set[str]:
    """The agents whose every model has no known price: a cost of 0 from them means unknown, not free."""
    from agentadapter.agents.llm_agent import LLMAgent
    from agentadapter.agents.run_config import RunConfig

    unpriced = set()
    for name, agent in agents.items():
        agent = _model_agent(agent)
        if not isinstance(agent, LLMAgent):
            continue
        try:
            bound_llm, model = agent.bind_model(agent.make_context("", RunConfig(llm=llm)))
            targets = bound_llm.resolver.route(model).targets
            if all(target.capabilities().pricing is None for target in targets):
                unpriced.add(name)
        except AgentAdapterError:
            continue  # reported when the run uses it
    return unpriced


def _cost(value: float, unpriced: bool) -> str:
    """A cost for the live lines and the table: ``unknown`` rather than $0 for a model without a price."""
    if unpriced and not value:
        return "unknown"
    return f"${usd(value)}"


def _print_summary(err: Console, out: Console, result: RunResult, unpriced: AbstractSet[str] = frozenset()) -> None:
    columns = [Column("#", numeric=True), Column("agent"), Column("phase"), Column("status"),
               Column("tokens in/out", numeric=True), Column("cost $", numeric=True), Column("time s", numeric=True)]
    rows: list[list[Cell]] = [
        [str(agent.step), agent.name + (f" → {agent.answered_by}" if agent.answered_by else ""), agent.phase,
         Text(agent.status, style=_STATUS_STYLE.get(agent.status, "")),
         f"{agent.usage.input_tokens}/{agent.usage.output_tokens}",
         _cost(agent.cost_usd, (agent.answered_by or agent.name) in unpriced).lstrip("$"),
         f"{agent.duration_ms / 1000:.2f}"]
        for agent in result.agents
    ]
    total: list[Cell] = ["", "total", "", Text(result.status, style=_STATUS_STYLE.get(result.status, "bold")),
                         f"{result.usage.input_tokens}/{result.usage.output_tokens}", _total_cost(result, unpriced),
                         f"{result.duration_ms / 1000:.2f}"]
    show_table(err, columns, rows, title=f"run {result.run_id} · {result.strategy}", total=total, heading=1)
    for agent in result.agents:
        if agent.error is not None and agent.status == "failed":
            err.print(f"  [red]#{agent.step} {escape(agent.name)}:[/] {escape(str(agent.error['message']))}",
                      markup=True, highlight=False)
    if result.error is not None:
        err.print(f"[bold red]{result.status}:[/] {escape(str(result.error['message']))}", markup=True, highlight=False)
    if result.output is not None:
        text = result.output if isinstance(result.output, str) else json.dumps(result.to_dict()["output"], indent=2)
        out.print(text, markup=False, highlight=False)
