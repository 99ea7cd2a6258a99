"""``agentadapter eval run DATASET --subject a --subject b`` and ``agentadapter eval compare RESULT.json``.

A thin shell over :mod:`agentadapter.evals`. ``run`` reads a dataset file (YAML, JSON, JSONL, CSV),
runs it against each ``--subject`` - a model id or alias (``openai/gpt-4o-mini``, ``smart``), or a
workflow file (``team.yaml``; a one-agent workflow runs as that agent, so its tool calls are seen),
either optionally named ``NAME=...`` - with live progress on stderr, then prints a table per subject
(score, each evaluator, errors, cost, latency) that stays readable at 80 columns, and: for two
subjects the A/B comparison of the second against the first, for more the benchmark's Pareto front
and recommendation. ``--json`` prints the whole result (with the comparison or benchmark) instead;
``--output FILE.json|FILE.csv`` also writes it. ``compare`` reads an exported JSON result and compares
two of its subjects. Exit codes: 0 done, 2 a usage error (bad dataset, subject, evaluator or model).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from agentadapter.cli.tables import Cell, Column, show_table, usd
from agentadapter.llm.errors import AgentAdapterError, ConfigurationError, InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.evals import Comparison, ExperimentResult, Subject
    from agentadapter.llm.client import LLM

__all__ = ["eval_app"]

EXIT_FAILED = 1
EXIT_USAGE_ERROR = 2

eval_app = typer.Typer(name="eval", help="Evaluate agents, workflows and models on a dataset.", no_args_is_help=True)


def _fail(err: Console, error: AgentAdapterError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False)
    usage = isinstance(error, ConfigurationError | InvalidRequestError)
    return typer.Exit(EXIT_USAGE_ERROR if usage else EXIT_FAILED)


def parse_subject(value: str, llm: LLM) -> Subject:
    """A ``--subject``: ``[NAME=]MODEL`` or ``[NAME=]WORKFLOW.yaml``."""
    from agentadapter.evals import AgentSubject, ModelSubject, WorkflowSubject
    from agentadapter.orchestrator import load_workflow

    name, sep, target = value.partition("=")
    if not sep or "/" in name or not name.strip():
        name, target = "", value
    target = target.strip()
    if not target:
        raise InvalidRequestError(f"--subject {value!r} names nothing; give a model id or a workflow file")
    if target.endswith((".yaml", ".yml")):
        workflow = load_workflow(target)
        agents = workflow.agents
        if len(agents) == 1:
            (agent,) = agents.values()
            return AgentSubject(agent, name or workflow.name)
        return WorkflowSubject.of(workflow, name or None)
    llm.resolver.route(target)  # an unknown provider or missing key is a usage error now, not N failed cases
    return ModelSubject(target, name or None)


def _evaluator_specs(values: list[str]) -> list[Any]:
    specs: list[Any] = []
    for value in values:
        text = value.strip()
        if text.startswith("{"):
            try:
                specs.append(json.loads(text))
            except ValueError as exc:
                raise InvalidRequestError(f"--evaluator {value!r} is not JSON: {exc}") from exc
        else:
            specs.append(text)
    return specs


@eval_app.command("run")
def run_command(
    dataset: Annotated[Path, typer.Argument(help="the dataset file (.yaml, .json, .jsonl or .csv)",
                                            show_default=False)],
    subject: Annotated[list[str], typer.Option("--subject", "-s", help="[NAME=]MODEL or [NAME=]WORKFLOW.yaml "
                                                                      "(repeatable; the first is the baseline)")],
    evaluator: Annotated[list[str] | None, typer.Option("--evaluator", "-e", help="an evaluator: a type "
                         "(exact, contains) or a JSON spec (repeatable), beside the dataset's")] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="runs of each case per subject")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="cases running at once")] = 8,
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0.0, help="stop scheduling at this spend, USD")]
    = None,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0, help="benchmark: score a cheaper subject may "
                                                                          "lose and still be recommended")] = 0.02,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="also write the result (.json or .csv)")]
    = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="agentadapter.yaml to use")] = None,
) -> None:
    """Run a dataset against subjects: live progress, then a table and a comparison or benchmark."""
    from agentadapter.evals import load_dataset
    from agentadapter.llm.client import LLM

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    try:
        if output is not None and output.suffix.lower() not in (".json", ".csv"):
            raise InvalidRequestError(f"--output {str(output)!r}: name it .json or .csv")
        if max_cost == 0:
            raise InvalidRequestError("--max-cost must be more than 0")
        data = load_dataset(dataset)
        llm = LLM(config=config)
        subjects = [parse_subject(value, llm) for value in subject]
        specs = _evaluator_specs(evaluator or [])
    except AgentAdapterError as error:
        raise _fail(err, error) from None
    try:
        result = asyncio.run(_run(llm, data, subjects, specs, repeat, concurrency, max_cost, err, as_json))
    except AgentAdapterError as error:
        raise _fail(err, error) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    report = _report(result, tolerance)
    if output is not None:
        from agentadapter.evals import to_csv

        text = to_csv(result) if output.suffix.lower() == ".csv" else json.dumps({**result.to_dict(), **report})
        output.write_text(text, "utf-8")
    if as_json:
        sys.stdout.write(json.dumps({**result.to_dict(), **report}) + "\n")
        return
    _print_result(out, result)
    _print_report(out, result, tolerance)
    if result.stopped:
        err.print(f"[yellow]stopped at the cost cap: {len(result.results)} of {result.planned} answers "
                  f"(${result.cost_usd + result.eval_cost_usd:.6f} spent)[/]")


async def _run(llm: LLM, data: Any, subjects: list[Subject], specs: list[Any], repeat: int, concurrency: int,
               max_cost: float | None, err: Console, quiet: bool) -> ExperimentResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agentadapter.evals import run_experiment

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("${task.fields[spent]:.4f}"), TimeElapsedColumn(), console=err,
                        disable=quiet or not err.is_terminal, transient=True)
    total = len(data.cases) * repeat * len(subjects)
    task = progress.add_task(f"{data.name} v{data.version[:8]}", total=total, spent=0.0)
    try:
        with progress:
            return await run_experiment(
                data, subjects, evaluators=specs, llm=llm, concurrency=concurrency, repeat=repeat,
                max_cost_usd=max_cost,
                on_progress=lambda p: progress.update(task, completed=p.done, spent=p.spent_usd),
            )
    finally:
        await llm.aclose()


def _report(result: ExperimentResult, tolerance: float) -> dict[str, Any]:
    from agentadapter.evals import benchmark_report, compare

    names = result.subject_names
    if len(names) == 2:
        return {"comparison": compare(result, names[0], names[1]).to_dict()}
    if len(names) > 2:
        return {"benchmark": benchmark_report(result, tolerance=tolerance).to_dict()}
    return {}


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _print_result(out: Console, result: ExperimentResult) -> None:
    metrics = result.metrics()
    columns = [Column("subject"), Column("score", True), *(Column(m, True) for m in metrics), Column("errors", True),
               Column("cost $", True), Column("$/case", True), Column("p50 ms", True), Column("p95 ms", True)]
    rows: list[list[Cell]] = []
    for summary in result.summaries():
        rows.append([summary.subject, f"{summary.score:.3f}", *(f"{summary.metrics.get(m, 0.0):.3f}" for m in metrics),
                     str(summary.errors), usd(summary.cost_usd), usd(summary.cost_per_case_usd),
                     _ms(summary.latency_p50_ms), _ms(summary.latency_p95_ms)])
    title = (f"{result.dataset} (version {result.dataset_version[:8]}): {len(result.results)} answers, "
             f"repeat {result.repeat}")
    show_table(out, columns, rows, title=title)
    if result.eval_cost_usd:
        out.print(f"evaluation cost (judges, embeddings): ${result.eval_cost_usd:.6f}", highlight=False,
                  soft_wrap=False)


def _print_comparison(out: Console, comparison: Comparison) -> None:
    columns = [Column("metric"), Column(comparison.a, True), Column(comparison.b, True), Column("diff", True),
               Column(f"{round(comparison.confidence * 100)}% CI", True), Column("W/L/T", True)]
    rows: list[list[Cell]] = []
    for m in comparison.metrics:
        digits = 6 if m.metric == "cost_usd" else 1 if m.metric == "latency_ms" else 3
        style = "green" if m.b_better else "red" if m.b_better is False else ""
        rows.append([m.metric, f"{m.mean_a:.{digits}f}", f"{m.mean_b:.{digits}f}",
                     Text(f"{m.difference:+.{digits}f}", style=style),
                     f"{m.ci_low:+.{digits}f}..{m.ci_high:+.{digits}f}", f"{m.wins}/{m.losses}/{m.ties}"])
    show_table(out, columns, rows, title=f"{comparison.b} vs {comparison.a} (paired by case)")
    out.print(comparison.verdict, highlight=False, soft_wrap=False)  # wrapped at the width


def _print_report(out: Console, result: ExperimentResult, tolerance: float) -> None:
    from agentadapter.evals import benchmark_report, compare

    names = result.subject_names
    if len(names) == 2:
        _print_comparison(out, compare(result, names[0], names[1]))
    elif len(names) > 2:
        report = benchmark_report(result, tolerance=tolerance)
        rows: list[list[Cell]] = [
            [row.subject, f"{row.score:.3f}", usd(row.cost_per_case_usd), _ms(row.latency_p50_ms),
             "yes" if row.pareto else "", Text("yes", style="bold green") if row.recommended else ""]
            for row in report.rows
        ]
        show_table(out, [Column("subject"), Column("score", True), Column("$/case", True), Column("p50 ms", True),
                         Column("pareto"), Column("pick")], rows, title="quality x cost x latency")
        out.print(f"recommendation: {report.reason}", highlight=False, soft_wrap=False)


@eval_app.command("compare")
def compare_command(
    result_file: Annotated[Path, typer.Argument(help="a result written by eval run --output FILE.json",
                                                show_default=False)],
    a: Annotated[str, typer.Option("--a", help="the baseline subject")],
    b: Annotated[str, typer.Option("--b", help="the candidate subject")],
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999,
                                              help="the confidence level of the intervals")] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
) -> None:
    """Compare two subjects of a saved result: paired differences with bootstrap intervals."""
    from agentadapter.evals import ExperimentResult, compare

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    try:
        try:
            data = json.loads(result_file.read_text("utf-8"))
        except OSError as exc:
            raise InvalidRequestError(f"cannot read {str(result_file)!r}: {exc.strerror}") from exc
        except ValueError as exc:
            raise InvalidRequestError(f"{str(result_file)!r} is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidRequestError(f"{str(result_file)!r} is not an experiment result")
        comparison = compare(ExperimentResult.from_dict(data), a, b, confidence=confidence)
    except AgentAdapterError as error:
        raise _fail(err, error) from None
    if as_json:
        sys.stdout.write(json.dumps(comparison.to_dict()) + "\n")
    else:
        _print_comparison(out, comparison)
