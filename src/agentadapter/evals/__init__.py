"""Evaluation: datasets, evaluators, experiments, A/B comparisons and backend benchmarks.

A layer beside the orchestrator's users: it runs agents, workflows and models (through
:mod:`agentadapter.agents`, :mod:`agentadapter.orchestrator` and the ``LLM`` facade) and nothing below
it imports it; the service stores datasets and experiments and runs them for tenants. See
docs/evaluation.md for a walk-through.
"""

from __future__ import annotations

from agentadapter.evals.benchmark import (
    BenchmarkReport,
    BenchmarkRow,
    benchmark_report,
    pareto_front,
    run_benchmark,
)
from agentadapter.evals.compare import Comparison, MetricComparison, bootstrap_interval, compare
from agentadapter.evals.dataset import Case, Dataset, load_dataset, parse_dataset
from agentadapter.evals.evaluators import (
    Contains,
    EvalContext,
    Evaluator,
    ExactMatch,
    FunctionEvaluator,
    JSONSchemaValid,
    LLMJudge,
    MaxCost,
    MaxLatency,
    NumericClose,
    RegexMatch,
    Score,
    SemanticSimilar,
    ToolCalled,
    from_spec,
)
from agentadapter.evals.experiment import CaseResult, ExperimentResult, Progress, SubjectSummary, run_experiment
from agentadapter.evals.export import to_csv, to_json
from agentadapter.evals.subjects import (
    AgentSubject,
    ModelSubject,
    Subject,
    SubjectOutput,
    WorkflowSubject,
    coerce_subject,
)

__all__ = [
    "AgentSubject",
    "BenchmarkReport",
    "BenchmarkRow",
    "Case",
    "CaseResult",
    "Comparison",
    "Contains",
    "Dataset",
    "EvalContext",
    "Evaluator",
    "ExactMatch",
    "ExperimentResult",
    "FunctionEvaluator",
    "JSONSchemaValid",
    "LLMJudge",
    "MaxCost",
    "MaxLatency",
    "MetricComparison",
    "ModelSubject",
    "NumericClose",
    "Progress",
    "RegexMatch",
    "Score",
    "SemanticSimilar",
    "Subject",
    "SubjectOutput",
    "SubjectSummary",
    "ToolCalled",
    "WorkflowSubject",
    "benchmark_report",
    "bootstrap_interval",
    "coerce_subject",
    "compare",
    "from_spec",
    "load_dataset",
    "pareto_front",
    "parse_dataset",
    "run_benchmark",
    "run_experiment",
    "to_csv",
    "to_json",
]
