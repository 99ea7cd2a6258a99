"""Experiment results as JSON (the whole result) or CSV (one row per case result, one column per metric).

The CSV is flat for spreadsheets: ``subject, case_id, repetition, score, <each evaluator>, cost_usd,
eval_cost_usd, latency_ms, input_tokens, output_tokens, error, text``. A cell that starts with ``=``,
``+``, ``-`` or ``@`` (which a spreadsheet would run as a formula) is prefixed with ``'``: answers and
case ids are data someone else wrote.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from agentadapter.evals.experiment import ExperimentResult

__all__ = ["to_csv", "to_json"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_json(result: ExperimentResult, *, indent: int | None = 2) -> str:
    return json.dumps(result.to_dict(), indent=indent, ensure_ascii=False, default=str)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(result: ExperimentResult) -> str:
    metrics = result.metrics()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["subject", "case_id", "repetition", "score", *metrics, "cost_usd", "eval_cost_usd", "latency_ms",
                     "input_tokens", "output_tokens", "error", "text"])
    for row in result.results:
        scores = [row.scores[m].value if m in row.scores else "" for m in metrics]
        writer.writerow([_cell(row.subject), _cell(row.case_id), row.repetition, f"{row.score:.6g}", *scores,
                         f"{row.cost_usd:.8f}", f"{row.eval_cost_usd:.8f}", f"{row.latency_ms:.3f}",
                         row.usage.get("input_tokens", 0), row.usage.get("output_tokens", 0), _cell(row.error or ""),
                         _cell(row.text)])
    return out.getvalue()
