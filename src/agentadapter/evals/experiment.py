"""Experiments: a dataset against one or more subjects, with bounded concurrency, repetitions and a cost cap.

:func:`run_experiment` schedules every (case, repetition, subject) in case order, so that a cost cap
that stops scheduling leaves every subject with about the same cases done. ``concurrency`` workers
take the next item as they free up (no task per case); each item answers the case through its
subject, then runs every evaluator (the dataset's, the case's own, and those passed in). When the
subjects' and evaluators' spend reaches ``max_cost_usd`` no new item starts, the ones running finish,
and the result says ``stopped="max_cost_usd"``. ``on_progress`` is called after each item with a
:class:`Progress`. The :class:`ExperimentResult` keeps every :class:`CaseResult` (output, scores,
tokens, cost, latency, error) and summarizes per subject; :mod:`.compare` and :mod:`.benchmark` read it,
:mod:`.export` writes it as JSON or CSV.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentadapter.agents.base import BaseAgent
from agentadapter.errors import InvalidRequestError
from agentadapter.evals.dataset import Case, Dataset
from agentadapter.evals.evaluators import EvalContext, Evaluator, Score, evaluate_all, from_spec
from agentadapter.evals.subjects import Subject, SubjectOutput, coerce_subject
from agentadapter.orchestrator.workflow import Workflow

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM

__all__ = [
    "CaseResult",
    "ExperimentResult",
    "Progress",
    "SubjectSummary",
    "run_experiment",
]

SCORE = "score"
"""The name of a case's overall score: the mean of its evaluators' scores."""


@dataclass(slots=True)
class CaseResult:
    """One subject's answer to one case (one repetition), and its scores."""

    subject: str
    case_id: str
    repetition: int
    output: Any
    text: str
    scores: dict[str, Score]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    """The subject's cost for this answer."""
    eval_cost_usd: float = 0.0
    """What evaluating it cost (judges, embeddings)."""
    latency_ms: float = 0.0
    error: str | None = None

    @property
    def score(self) -> float:
        """The mean of the evaluators' scores (0 for a failed answer; 1 when no evaluator applies)."""
        if self.error is not None:
            return 0.0
        if not self.scores:
            return 1.0
        return sum(s.value for s in self.scores.values()) / len(self.scores)

    def metric(self, name: str) -> float | None:
        """A metric's value: ``score``, an evaluator's name, ``cost_usd`` or ``latency_ms``."""
        if name == SCORE:
            return self.score
        if name == "cost_usd":
            return self.cost_usd
        if name == "latency_ms":
            return self.latency_ms
        found = self.scores.get(name)
        return found.value if found is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject, "case_id": self.case_id, "repetition": self.repetition,
            "output": self.output, "text": self.text, "score": self.score,
            "scores": {k: v.to_dict() for k, v in self.scores.items()}, "tool_calls": self.tool_calls,
            "usage": self.usage, "cost_usd": self.cost_usd, "eval_cost_usd": self.eval_cost_usd,
            "latency_ms": round(self.latency_ms, 3), "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseResult:
        scores = {k: Score(str(v.get("name", k)), float(v.get("value", 0.0)), str(v.get("reason", "")),
                           float(v.get("cost_usd", 0.0))) for k, v in (data.get("scores") or {}).items()}
        return cls(subject=str(data["subject"]), case_id=str(data["case_id"]),
                   repetition=int(data.get("repetition", 0)),
                   output=data.get("output"), text=str(data.get("text") or ""), scores=scores,
                   tool_calls=list(data.get("tool_calls") or []), usage=dict(data.get("usage") or {}),
                   cost_usd=float(data.get("cost_usd") or 0.0), eval_cost_usd=float(data.get("eval_cost_usd") or 0.0),
                   latency_ms=float(data.get("latency_ms") or 0.0), error=data.get("error"))


@dataclass(slots=True, frozen=True)
class Progress:
    """Where an experiment stands, after each item."""

    done: int
    total: int
    spent_usd: float
    last: CaseResult


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass(slots=True, frozen=True)
class SubjectSummary:
    """One subject's results in a few numbers."""

    subject: str
    cases: int
    errors: int
    score: float
    """Mean overall score."""
    metrics: dict[str, float]
    """Mean of each evaluator's score."""
    cost_usd: float
    """Total subject cost."""
    eval_cost_usd: float
    cost_per_case_usd: float
    latency_p50_ms: float
    latency_p95_ms: float
    input_tokens: int
    output_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "cases": self.cases, "errors": self.errors, "score": self.score,
                "metrics": dict(self.metrics), "cost_usd": self.cost_usd, "eval_cost_usd": self.eval_cost_usd,
                "cost_per_case_usd": self.cost_per_case_usd, "latency_p50_ms": self.latency_p50_ms,
                "latency_p95_ms": self.latency_p95_ms, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens}


@dataclass(slots=True)
class ExperimentResult:
    """Every case result of an experiment, and what it ran."""

    name: str
    dataset: str
    dataset_version: str
    subjects: list[dict[str, Any]]
    results: list[CaseResult]
    repeat: int = 1
    planned: int = 0
    """Items the experiment would run without a cap (cases x repetitions x subjects)."""
    stopped: str | None = None
    """``max_cost_usd`` when the cost cap stopped scheduling."""
    duration_ms: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def subject_names(self) -> list[str]:
        return [str(s["name"]) for s in self.subjects]

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.results)

    @property
    def eval_cost_usd(self) -> float:
        return sum(r.eval_cost_usd for r in self.results)

    def of(self, subject: str) -> list[CaseResult]:
        return [r for r in self.results if r.subject == subject]

    def metrics(self) -> list[str]:
        """The evaluator names that scored, in first-seen order."""
        names: dict[str, None] = {}
        for result in self.results:
            names.update(dict.fromkeys(result.scores))
        return list(names)

    def summary(self, subject: str) -> SubjectSummary:
        rows = self.of(subject)
        latencies = [r.latency_ms for r in rows]
        metrics: dict[str, float] = {}
        for name in self.metrics():
            values = [v for r in rows if (v := r.metric(name)) is not None]
            if values:
                metrics[name] = statistics.fmean(values)
        cost = sum(r.cost_usd for r in rows)
        return SubjectSummary(
            subject=subject, cases=len(rows), errors=sum(1 for r in rows if r.error is not None),
            score=statistics.fmean(r.score for r in rows) if rows else 0.0, metrics=metrics, cost_usd=cost,
            eval_cost_usd=sum(r.eval_cost_usd for r in rows), cost_per_case_usd=cost / len(rows) if rows else 0.0,
            latency_p50_ms=_percentile(latencies, 0.5), latency_p95_ms=_percentile(latencies, 0.95),
            input_tokens=sum(r.usage.get("input_tokens", 0) for r in rows),
            output_tokens=sum(r.usage.get("output_tokens", 0) for r in rows),
        )

    def summaries(self) -> list[SubjectSummary]:
        return [self.summary(s) for s in self.subject_names]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "dataset": self.dataset, "dataset_version": self.dataset_version,
            "subjects": self.subjects, "repeat": self.repeat, "planned": self.planned, "completed": len(self.results),
            "stopped": self.stopped, "duration_ms": round(self.duration_ms, 3), "cost_usd": self.cost_usd,
            "eval_cost_usd": self.eval_cost_usd, "summary": [s.to_dict() for s in self.summaries()],
            "results": [r.to_dict() for r in self.results],
        }


    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentResult:
        """A result from its :meth:`to_dict` (an exported JSON file, a stored experiment)."""
        try:
            return cls(name=str(data["name"]), dataset=str(data["dataset"]),
                       dataset_version=str(data["dataset_version"]),
                       subjects=[dict(s) for s in data["subjects"]],
                       results=[CaseResult.from_dict(r) for r in data["results"]], repeat=int(data.get("repeat", 1)),
                       planned=int(data.get("planned", 0)), stopped=data.get("stopped"),
                       duration_ms=float(data.get("duration_ms", 0.0)), id=str(data.get("id") or uuid.uuid4().hex))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRequestError(f"not an experiment result ({type(exc).__name__}: {exc}); export one with "
                                      "to_json or agentadapter eval run --output FILE.json") from exc


ProgressCallback = Callable[[Progress], None]


def _evaluators_for(case: Case, shared: Sequence[Evaluator], cache: dict[int, list[Evaluator]],
                    trusted: bool) -> list[Evaluator]:
    if not case.evaluators:
        return list(shared)
    key = id(case)
    if key not in cache:
        cache[key] = [*shared, *(from_spec(s, where=f"case {case.id}", trusted=trusted) for s in case.evaluators)]
    return cache[key]


def _unique_names(subjects: Sequence[Subject]) -> None:
    seen: set[str] = set()
    for subject in subjects:
        if subject.name in seen:
            raise InvalidRequestError(f"two subjects are named {subject.name!r}; give each a name of its own")
        seen.add(subject.name)


async def run_experiment(
    dataset: Dataset,
    subjects: Sequence[Subject | BaseAgent | Workflow | str],
    *,
    evaluators: Sequence[Evaluator | Mapping[str, Any] | str] = (),
    llm: LLM | None = None,
    concurrency: int = 8,
    repeat: int = 1,
    max_cost_usd: float | None = None,
    on_progress: ProgressCallback | None = None,
    name: str | None = None,
    trusted: bool = True,
) -> ExperimentResult:
    """Run ``dataset`` against ``subjects`` and score every answer (see the module docstring).

    ``llm`` is the facade subjects and model-based evaluators call (None: agents use their default).
    ``trusted=False`` builds every evaluator spec (the dataset's, its cases', those given) as tenant data
    (:func:`.evaluators.from_spec`).
    """
    if concurrency < 1:
        raise InvalidRequestError("concurrency must be at least 1")
    if repeat < 1:
        raise InvalidRequestError("repeat must be at least 1")
    if max_cost_usd is not None and max_cost_usd <= 0:
        raise InvalidRequestError("max_cost_usd must be a positive number of USD")
    chosen = [coerce_subject(s) for s in subjects]
    if not chosen:
        raise InvalidRequestError("an experiment needs at least one subject")
    _unique_names(chosen)
    shared = [*(from_spec(s, where=f"dataset evaluators[{i}]", trusted=trusted)
                for i, s in enumerate(dataset.evaluators)),
              *(e if isinstance(e, Evaluator) else from_spec(e, where=f"evaluators[{i}]", trusted=trusted)
                for i, e in enumerate(evaluators))]
    names = [e.name for e in shared]
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"two evaluators share a name ({', '.join(sorted(names))}); name them apart")
    per_case: dict[int, list[Evaluator]] = {}
    for case in dataset.cases:  # a bad case spec is refused before anything runs
        _evaluators_for(case, shared, per_case, trusted)

    def items() -> Iterator[tuple[Case, int, Subject]]:
        for case in dataset.cases:
            for repetition in range(repeat):
                for subject in chosen:
                    yield case, repetition, subject

    planned = len(dataset.cases) * repeat * len(chosen)
    queue = items()
    results: list[CaseResult] = []
    spent = 0.0
    stopped: str | None = None
    started = time.perf_counter()

    async def one(case: Case, repetition: int, subject: Subject) -> CaseResult:
        answer: SubjectOutput = await subject.answer(case.input, llm)
        scores = await evaluate_all(_evaluators_for(case, shared, per_case, trusted), EvalContext(case, answer, llm))
        return CaseResult(
            subject=subject.name, case_id=case.id, repetition=repetition, output=answer.output, text=answer.text,
            scores={s.name: s for s in scores}, tool_calls=answer.tool_calls, usage=answer.usage.to_dict(),
            cost_usd=answer.cost_usd, eval_cost_usd=sum(s.cost_usd for s in scores), latency_ms=answer.latency_ms,
            error=answer.error,
        )

    async def worker() -> None:
        nonlocal spent, stopped
        while True:
            if max_cost_usd is not None and spent >= max_cost_usd:
                stopped = "max_cost_usd"
                return
            item = next(queue, None)  # one shared iterator: each item is taken once, in order
            if item is None:
                return
            result = await one(*item)
            results.append(result)
            spent += result.cost_usd + result.eval_cost_usd
            if on_progress is not None:
                on_progress(Progress(len(results), planned, spent, result))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, planned)):
            group.create_task(worker())
    order = {(c.id, s.name): i for i, (c, s) in enumerate((c, s) for c in dataset.cases for s in chosen)}
    results.sort(key=lambda r: (order[(r.case_id, r.subject)], r.repetition))
    return ExperimentResult(
        name=name or dataset.name, dataset=dataset.name, dataset_version=dataset.version,
        subjects=[s.describe() for s in chosen], results=results, repeat=repeat, planned=planned,
        stopped=stopped if len(results) < planned else None, duration_ms=(time.perf_counter() - started) * 1000.0,
    )
