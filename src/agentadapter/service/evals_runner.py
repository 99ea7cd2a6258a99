"""The agent that runs an experiment inside a run, and what happens when it ends.

:class:`ExperimentAgent` is the single agent of an experiment's run: its ``execute`` runs the dataset
against the subjects with :func:`agentadapter.evals.run_experiment` on the run's facade (the tenant's,
tagged with the run: every call is metered and charged as the run's), writes progress about once a
second, and on the end writes every case result, the summary per subject and, for two subjects, the
A/B comparison, in one transaction. A failure or a cancel is recorded on the experiment and re-raised,
so the run ends the same way. A re-run of an attached experiment is then compared with the previous
completed one: when the watched subject's score dropped by more than the threshold, the re-run records
a ``regression``, an ``experiment.regression`` audit entry and a warning log event are written, and the
``agentadapter_eval_regressions_total`` counter goes up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client import Counter

from agentadapter.agents.base import BaseAgent
from agentadapter.agents.context import AgentContext
from agentadapter.agents.result import AgentResult
from agentadapter.evals import Dataset, ExperimentResult, compare, run_experiment
from agentadapter.evals.experiment import SCORE, Progress
from agentadapter.evals.subjects import Subject
from agentadapter.llm.messages import Usage
from agentadapter.store import audit
from agentadapter.store import evals as eval_store
from agentadapter.store.evals_models import Experiment

if TYPE_CHECKING:
    from agentadapter.store.database import Database

__all__ = ["REGRESSIONS", "ExperimentAgent", "RunSpec", "regression_of"]

logger = logging.getLogger("agentadapter.service.evals")

REGRESSIONS = Counter("agentadapter_eval_regressions_total",
                      "Re-runs of attached experiments whose score dropped beyond their threshold.")

PROGRESS_INTERVAL_S = 1.0


@dataclass(slots=True)
class RunSpec:
    """Everything an experiment's run needs, built (and checked) by the service before it starts."""

    experiment_id: uuid.UUID
    tenant_id: uuid.UUID
    dataset: Dataset
    subjects: list[Subject]
    evaluators: list[Any]
    repeat: int = 1
    concurrency: int = 4
    max_cost_usd: float | None = None


def regression_of(previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]], subject: str,
                  threshold: float) -> dict[str, Any] | None:
    """The regression of ``subject`` between two summaries (None when its score did not drop beyond ``threshold``)."""
    before = next((s for s in previous if s.get("subject") == subject), None)
    after = next((s for s in current if s.get("subject") == subject), None)
    if before is None or after is None:
        return None
    drop = float(before.get(SCORE, 0.0)) - float(after.get(SCORE, 0.0))
    if drop <= threshold:
        return None
    return {"metric": SCORE, "subject": subject, "previous": before.get(SCORE), "current": after.get(SCORE),
            "drop": drop, "threshold": threshold}


class ExperimentAgent(BaseAgent):
    """Runs one experiment as the single agent of its run."""

    agent_type: ClassVar[str] = "experiment"

    def __init__(self, db: Database, spec: RunSpec) -> None:
        super().__init__("experiment")
        self.db = db
        self.spec = spec
        self._progress: Progress | None = None

    async def execute(self, context: AgentContext) -> AgentResult:
        await self._update(status="running")
        writer = asyncio.get_running_loop().create_task(self._write_progress(), name="experiment-progress")
        try:
            result = await run_experiment(
                self.spec.dataset, self.spec.subjects, evaluators=self.spec.evaluators, llm=context.llm,
                concurrency=self.spec.concurrency, repeat=self.spec.repeat, max_cost_usd=self.spec.max_cost_usd,
                on_progress=self._on_progress, trusted=False,
            )
        except asyncio.CancelledError:
            await asyncio.shield(self._fail("cancelled", {"type": "Cancelled", "message": "the experiment's run was "
                                                                                         "cancelled"}))
            raise
        except Exception as exc:
            await asyncio.shield(self._fail("failed", {"type": type(exc).__name__, "message": str(exc)}))
            raise
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        summary = await asyncio.shield(self._finish(result))
        usage = Usage()
        for row in result.results:
            usage = usage + Usage(**{k: v for k, v in row.usage.items() if k in Usage.__dataclass_fields__})
        text = summary.get("verdict") or "; ".join(
            f"{s['subject']}: score {s['score']:.3f}" for s in summary["summary"])
        return AgentResult(output=summary, text=text, usage=usage, cost_usd=result.cost_usd + result.eval_cost_usd)

    def _on_progress(self, progress: Progress) -> None:
        self._progress = progress

    async def _write_progress(self) -> None:
        written = -1
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            progress = self._progress
            if progress is not None and progress.done != written:
                written = progress.done
                await self._update(completed=progress.done)

    async def _update(self, **fields: Any) -> None:
        async with self.db.write_session() as session:
            experiment = await eval_store.get_experiment(session, self.spec.tenant_id, self.spec.experiment_id)
            for name, value in fields.items():
                setattr(experiment, name, value)
            await session.commit()

    async def _fail(self, status: str, error: dict[str, Any]) -> None:
        async with self.db.write_session() as session:
            experiment = await eval_store.get_experiment(session, self.spec.tenant_id, self.spec.experiment_id)
            progress = self._progress
            await eval_store.finish_experiment(session, experiment, status=status, error=error,
                                               completed=progress.done if progress else 0)
            await session.commit()

    async def _finish(self, result: ExperimentResult) -> dict[str, Any]:
        summaries = [s.to_dict() for s in result.summaries()]
        comparison = None
        names = result.subject_names
        if len(names) == 2:
            comparison = compare(result, names[0], names[1]).to_dict()
        async with self.db.write_session() as session:
            experiment = await eval_store.get_experiment(session, self.spec.tenant_id, self.spec.experiment_id)
            regression = await self._regression(session, experiment, summaries)
            await eval_store.finish_experiment(
                session, experiment, status="completed", results=[_row(r) for r in result.to_dict()["results"]],
                summary=summaries, comparison=comparison, completed=len(result.results), planned=result.planned,
                stopped=result.stopped, cost_usd=result.cost_usd, eval_cost_usd=result.eval_cost_usd,
                regression=regression,
            )
            if regression is not None:
                await audit.record_audit(session, experiment.tenant_id, action="experiment.regression",
                                         resource_type="experiment", resource_id=experiment.id, actor_type="system",
                                         actor_id="continuous-evaluation", details=regression)
            await session.commit()
        if regression is not None:
            REGRESSIONS.inc()
            logger.warning("eval_regression experiment=%s parent=%s subject=%s version=%s score %.3f -> %.3f "
                           "(drop %.3f > threshold %.3f)", experiment.id, experiment.parent_id, regression["subject"],
                           regression.get("version"), regression["previous"], regression["current"],
                           regression["drop"], regression["threshold"],
                           extra={"event": "eval_regression", "tenant_id": str(experiment.tenant_id)})
        return {"experiment_id": str(self.spec.experiment_id), "summary": summaries,
                "verdict": comparison["verdict"] if comparison else None, "stopped": result.stopped,
                "regression": regression}

    async def _regression(self, session: Any, experiment: Experiment,
                          summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
        if experiment.parent_id is None:
            return None
        parent = await eval_store.get_experiment(session, experiment.tenant_id, experiment.parent_id)
        previous = await eval_store.latest_finished_child(session, experiment.tenant_id, parent.id,
                                                          before=experiment.id)
        baseline = previous if previous is not None else parent if parent.status == "completed" else None
        watched = next((s for s in experiment.subjects if s.get("kind") in ("agent", "workflow")), None)
        if baseline is None or watched is None:
            return None
        found = regression_of(baseline.summary or [], summaries, str(watched["name"]),
                              experiment.threshold if experiment.threshold is not None else 0.05)
        if found is not None:
            found.update(version=experiment.watched_version, previous_experiment_id=str(baseline.id),
                         previous_version=baseline.watched_version)
        return found


def _row(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"subject": data["subject"], "case_id": data["case_id"], "repetition": data["repetition"],
            "score": data["score"], "output": data["output"], "text": data["text"], "scores": data["scores"],
            "tool_calls": data["tool_calls"], "usage": data["usage"], "cost_usd": data["cost_usd"],
            "eval_cost_usd": data["eval_cost_usd"], "latency_ms": data["latency_ms"], "error": data["error"]}
