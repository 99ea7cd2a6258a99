"""The backend benchmark: one dataset across many models, as a quality x cost x latency table.

:func:`benchmark_report` reads an experiment's results: per subject its mean score, cost per case,
median and 95th-percentile latency and error count; which subjects are on the Pareto front (no other
subject is at least as good on score, cost and latency and better on one); and a recommendation, the
cheapest subject whose score is within ``tolerance`` of the best (the faster one on a tie).
:func:`run_benchmark` runs the experiment over model ids (or any subjects) and reports in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentadapter.errors import InvalidRequestError
from agentadapter.evals.dataset import Dataset
from agentadapter.evals.evaluators import Evaluator
from agentadapter.evals.experiment import ExperimentResult, SubjectSummary, run_experiment
from agentadapter.evals.subjects import Subject

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM

__all__ = ["BenchmarkReport", "BenchmarkRow", "benchmark_report", "pareto_front", "run_benchmark"]


@dataclass(slots=True, frozen=True)
class BenchmarkRow:
    """One subject's quality, cost and latency."""

    subject: str
    score: float
    cost_per_case_usd: float
    latency_p50_ms: float
    latency_p95_ms: float
    errors: int
    cases: int
    pareto: bool
    recommended: bool

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "score": self.score, "cost_per_case_usd": self.cost_per_case_usd,
                "latency_p50_ms": self.latency_p50_ms, "latency_p95_ms": self.latency_p95_ms, "errors": self.errors,
                "cases": self.cases, "pareto": self.pareto, "recommended": self.recommended}


@dataclass(slots=True, frozen=True)
class BenchmarkReport:
    """The table, best score first, and the recommendation with its reason."""

    rows: list[BenchmarkRow]
    recommended: str | None
    reason: str
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "recommended": self.recommended, "reason": self.reason,
                "tolerance": self.tolerance}


def _dominates(x: SubjectSummary, y: SubjectSummary) -> bool:
    at_least = (x.score >= y.score and x.cost_per_case_usd <= y.cost_per_case_usd
                and x.latency_p50_ms <= y.latency_p50_ms)
    better = (x.score > y.score or x.cost_per_case_usd < y.cost_per_case_usd or x.latency_p50_ms < y.latency_p50_ms)
    return at_least and better


def pareto_front(summaries: Sequence[SubjectSummary]) -> list[str]:
    """The subjects no other subject dominates on (score up, cost down, latency down)."""
    return [s.subject for s in summaries if not any(_dominates(o, s) for o in summaries if o is not s)]


def benchmark_report(result: ExperimentResult, *, tolerance: float = 0.02) -> BenchmarkReport:
    """The benchmark table of ``result``; ``tolerance`` is how far below the best score a cheaper subject may be."""
    if tolerance < 0:
        raise InvalidRequestError("tolerance must be 0 or more")
    summaries = [s for s in result.summaries() if s.cases]
    if not summaries:
        return BenchmarkReport([], None, "no subject has results", tolerance)
    front = set(pareto_front(summaries))
    best = max(s.score for s in summaries)
    eligible = [s for s in summaries if s.score >= best - tolerance]
    choice = min(eligible, key=lambda s: (s.cost_per_case_usd, s.latency_p50_ms, -s.score))
    top = max(summaries, key=lambda s: (s.score, -s.cost_per_case_usd))
    if choice.subject == top.subject:
        reason = (f"{choice.subject} has the best score ({choice.score:.3f}) and no cheaper subject comes within "
                  f"{tolerance}")
    else:
        saving = (1 - choice.cost_per_case_usd / top.cost_per_case_usd) if top.cost_per_case_usd else 0.0
        reason = (f"{choice.subject} scores {choice.score:.3f}, within {tolerance} of the best ({top.subject}, "
                  f"{top.score:.3f}), at {saving:.0%} less cost per case")
    rows = [BenchmarkRow(s.subject, s.score, s.cost_per_case_usd, s.latency_p50_ms, s.latency_p95_ms, s.errors,
                         s.cases, s.subject in front, s.subject == choice.subject)
            for s in sorted(summaries, key=lambda s: (-s.score, s.cost_per_case_usd))]
    return BenchmarkReport(rows, choice.subject, reason, tolerance)


async def run_benchmark(dataset: Dataset, subjects: Sequence[Subject | str], *, llm: LLM,
                        evaluators: Sequence[Evaluator | Mapping[str, Any] | str] = (), concurrency: int = 8,
                        repeat: int = 1, max_cost_usd: float | None = None,
                        tolerance: float = 0.02) -> tuple[ExperimentResult, BenchmarkReport]:
    """Run ``dataset`` across ``subjects`` (model ids, aliases, or subjects) and report."""
    result = await run_experiment(dataset, subjects, evaluators=evaluators, llm=llm, concurrency=concurrency,
                                  repeat=repeat, max_cost_usd=max_cost_usd, name=f"benchmark:{dataset.name}")
    return result, benchmark_report(result, tolerance=tolerance)
