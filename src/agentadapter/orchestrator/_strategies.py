"""How each strategy runs, built from :meth:`RunEngine.step`.

- sequential: each agent gets the previous output as its input and everything before as history;
- parallel: :func:`fan_out` starts the group at once and handles completions as they come, so it
  can drop failures while the quorum holds, stop on a decision (``first``: a success; ``vote``: a
  majority) and cancel the agents still running, stop when the cost cap is crossed; then
  ``concat`` / ``vote`` / ``judge`` / ``first`` turn the answers into the output;
- adaptive: routes (conditions) and the router's answer choose each next agent;
- loop: generator and evaluator alternate until the evaluator accepts.

A step that an executor cannot give an outcome yet raises StepsPending (see
:mod:`agentadapter.orchestrator.steps`): it goes through every strategy unchanged, and a parallel
group raises it, with all its blocked steps, once nothing else in the group can move.

Agent outputs travel as messages named after their agent (see :func:`agent_message`). Private: a
strategy is chosen with the data classes in :mod:`agentadapter.orchestrator.strategies`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from agentadapter.agents.context import AgentInput
from agentadapter.llm.messages import Message
from agentadapter.orchestrator._run import RunEngine, StrategyRunner, agent_message
from agentadapter.orchestrator.errors import QuorumLostError, StepFailedError
from agentadapter.orchestrator.result import AgentRunResult
from agentadapter.orchestrator.steps import StepsPending
from agentadapter.orchestrator.strategies import END, Adaptive, Loop, Parallel, Sequential, Strategy

__all__ = ["fan_out", "pick_agent", "run_adaptive", "run_loop", "run_parallel", "run_sequential", "runner_for"]

_END_WORDS = frozenset({"end", "done", "finish", "finished", "stop", "none"})


def runner_for(strategy: Strategy) -> StrategyRunner:
    """The coroutine function that runs ``strategy`` on an engine."""
    if isinstance(strategy, Sequential):
        return lambda engine: run_sequential(engine, strategy)
    if isinstance(strategy, Parallel):
        return lambda engine: run_parallel(engine, strategy)
    if isinstance(strategy, Adaptive):
        return lambda engine: run_adaptive(engine, strategy)
    return lambda engine: run_loop(engine, strategy)


# ------------------------------------------------------------------------------------ sequential


async def run_sequential(engine: RunEngine, strategy: Sequential) -> Any:
    transcript = list(engine.task_messages)
    output: Any = None
    previous: str | None = None
    for name in strategy.agents or engine.order:
        via = f"after {previous}" if previous is not None else "start"
        record = await engine.step(name, transcript[-1], transcript[:-1], via=via)
        transcript.append(agent_message(record.answered_by or name, record.text))
        output, previous = record.output, name
    return output


# -------------------------------------------------------------------------------------- parallel


class _Slots:
    """A parallel group's ``max_concurrency`` slots.

    A semaphore, except that a branch blocked on a step without an outcome (StepsPending: the step
    is queued elsewhere) keeps its slot, as a running step would; once every slot is kept that way,
    the branches still waiting for one are blocked too and raise StepsPending themselves instead of
    waiting for ever. Waiters are served in the order they came (as ``asyncio.Semaphore`` does).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.parked = 0
        self._changed = asyncio.Event()

    async def acquire(self) -> None:
        while self.busy + self.parked >= self.size:
            if self.parked >= self.size:
                raise StepsPending(())
            self._changed.clear()
            await self._changed.wait()
        self.busy += 1

    def release(self) -> None:
        self.busy -= 1
        self._changed.set()

    def park(self) -> None:
        self.busy -= 1
        self.parked += 1
        self._changed.set()



async def fan_out(
    engine: RunEngine,
    names: Sequence[str],
    make_input: Callable[[str], tuple[AgentInput, list[Message]]],
    *,
    phase: str,
    quorum: int = 1,
    decided: Callable[[list[AgentRunResult]], str | None] | None = None,
    max_concurrency: int | None = None,
    via: str | None = None,
) -> tuple[list[AgentRunResult], list[str]]:
    """Run ``names`` at once; return (successes in group order, names of the failed).

    A failure is dropped while ``quorum`` successes are still possible (else QuorumLostError). When
    ``decided(successes)`` returns a reason, or the run crosses its cost cap, the agents still
    running are cancelled - their model calls are abandoned mid-flight - and recorded as cancelled.
    """
    done: asyncio.Queue[asyncio.Task[AgentRunResult]] = asyncio.Queue()
    slots = _Slots(max_concurrency) if max_concurrency else None

    async def one(name: str) -> AgentRunResult:
        input, history = make_input(name)
        if slots is None:
            return await engine.step(name, input, history, phase=phase, via=via)
        await slots.acquire()
        try:
            record = await engine.step(name, input, history, phase=phase, via=via)
        except StepsPending:
            slots.park()
            raise
        except BaseException:
            slots.release()
            raise
        slots.release()
        return record

    tasks: dict[asyncio.Task[AgentRunResult], str] = {}
    for name in names:
        task = asyncio.create_task(one(name), name=f"{engine.run_id}:{phase}:{name}")
        task.add_done_callback(done.put_nowait)
        tasks[task] = name
    successes: list[AgentRunResult] = []
    failed: list[str] = []
    blocked: list[StepsPending] = []
    reason = ""
    try:
        finished_count = 0  # a branch blocked on a step without an outcome has not finished: it may succeed
        for _ in range(len(tasks)):
            task = await done.get()
            if task.cancelled():
                finished_count += 1
                continue
            error = task.exception()
            if isinstance(error, StepsPending):
                blocked.append(error)
                continue
            finished_count += 1
            if error is None:
                successes.append(task.result())
                if engine.over_budget():
                    reason = "the run crossed its cost cap (limits.max_cost_usd)"
                    raise engine.budget_error()
                verdict = decided(successes) if decided is not None else None
                if verdict:
                    reason = f"the outcome was decided: {verdict}"
                    break
            elif isinstance(error, StepFailedError):
                failed.append(tasks[task])
                still_running = len(tasks) - finished_count
                if len(successes) + still_running < quorum:
                    reason = f"the quorum of {quorum} can no longer be reached"
                    raise QuorumLostError(
                        f"only {len(successes)} of the {len(tasks)} agents of the {phase} phase succeeded and "
                        f"{still_running} still run, so the quorum of {quorum} cannot be met; failed: "
                        f"{', '.join(failed)} (last error: {error.error})",
                        quorum=quorum, succeeded=len(successes), failed=list(failed),
                    ) from error
            else:
                reason = f"another agent's step ended the run ({type(error).__name__})"
                raise error
        if blocked:  # nothing decided the group, and some of it waits: so does the run
            raise StepsPending(request for pending in blocked for request in pending.requests)
    finally:
        counted = {id(r) for r in successes}
        for task in tasks:
            # Steps that finished before the decision was seen still ran (and spent): count them.
            if task.done() and not task.cancelled() and task.exception() is None and id(task.result()) not in counted:
                successes.append(task.result())
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            engine.task_reasons[task] = reason or engine.cancel_reason or "the run stopped"
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            engine.task_reasons.pop(task, None)
    if len(successes) < quorum:
        raise QuorumLostError(
            f"only {len(successes)} of the {len(tasks)} agents of the {phase} phase succeeded; the quorum is "
            f"{quorum}; failed: {', '.join(failed) or 'none'}",
            quorum=quorum, succeeded=len(successes), failed=list(failed),
        )
    position = {name: index for index, name in enumerate(names)}
    successes.sort(key=lambda r: position.get(r.name, 0))
    return successes, failed


async def run_parallel(engine: RunEngine, strategy: Parallel) -> Any:
    group = strategy.group(engine.order)
    task_input = engine.task_messages[-1]
    task_history = list(engine.task_messages[:-1])
    details = engine.result.details
    details["aggregate"] = strategy.aggregate

    def same_task(name: str) -> tuple[AgentInput, list[Message]]:
        return task_input, task_history

    first = strategy.aggregate == "first"
    answers, failed = await fan_out(
        engine, group, same_task, phase="run", quorum=1 if first else strategy.quorum,
        decided=(lambda done: f"{done[0].name} answered first") if first else None,
        max_concurrency=strategy.max_concurrency,
    )
    details["answered"] = [a.name for a in answers]
    if failed:
        details["dropped"] = failed
    if first:
        details["winner"] = answers[0].name
        return answers[0].output
    if strategy.aggregate == "concat":
        if len(answers) == 1:
            return answers[0].output
        return "\n\n".join(f"## {a.name}\n\n{a.text}" for a in answers)
    if strategy.aggregate == "judge":
        assert strategy.judge is not None
        return await _judge(engine, strategy.judge, answers)
    return await _vote(engine, answers, strategy.max_concurrency)


def _candidates_text(answers: Sequence[AgentRunResult], own: str | None = None) -> str:
    blocks = []
    for answer in answers:
        mine = " (yours)" if answer.name == own else ""
        blocks.append(f"### Answer from {answer.name}{mine}\n{answer.text}")
    return "\n\n".join(blocks)


async def _judge(engine: RunEngine, judge: str, answers: list[AgentRunResult]) -> Any:
    names = [a.name for a in answers]
    prompt = (
        f"{engine.task_text}\n\n{len(answers)} agents answered this task:\n\n{_candidates_text(answers)}\n\n"
        "Pick the best answer or merge them into a better one. To pick one unchanged, reply with only the name "
        f"of the agent that wrote it ({', '.join(names)}); otherwise reply with the merged answer."
    )
    record = await engine.step(judge, prompt, phase="judge", via=f"judging {', '.join(names)}")
    details = engine.result.details
    picked = _exact_agent(record.text, names)
    if picked is not None:
        details["picked"] = picked
        return next(a.output for a in answers if a.name == picked)
    details["merged"] = True
    return record.output


async def _vote(engine: RunEngine, answers: list[AgentRunResult], max_concurrency: int | None) -> Any:
    details = engine.result.details
    names = [a.name for a in answers]
    if len(answers) == 1:
        details["winner"] = names[0]
        details["votes"] = {}
        return answers[0].output

    def ballot(name: str) -> tuple[AgentInput, list[Message]]:
        prompt = (
            f"{engine.task_text}\n\nSeveral agents answered this task:\n\n{_candidates_text(answers, name)}\n\n"
            f"Vote for the best answer: reply with the name of the agent that wrote it ({', '.join(names)}) on the "
            "first line, then say why in one sentence."
        )
        return prompt, []

    votes: dict[str, str] = {}

    def majority(ballots: list[AgentRunResult]) -> str | None:
        for record in ballots:
            if record.name not in votes:
                choice = pick_agent(record.text, names)
                if choice is not None:
                    votes[record.name] = choice
        tally = Counter(votes.values())
        if tally:
            leader, count = tally.most_common(1)[0]
            if count * 2 > len(names):
                return f"{leader} has {count} of {len(names)} votes"
        return None

    try:
        ballots, _ = await fan_out(engine, names, ballot, phase="vote", decided=majority,
                                   max_concurrency=max_concurrency, via="voting")
        majority(ballots)
    except QuorumLostError:
        details["voting_failed"] = True  # nobody could vote: the first answer stands
    tally = Counter(votes.values())
    ranked = sorted(names, key=lambda n: (-tally.get(n, 0), names.index(n)))
    winner = ranked[0]
    details["votes"] = dict(votes)
    details["tally"] = {n: tally.get(n, 0) for n in names}
    details["winner"] = winner
    own = next(a for a in answers if a.name == winner)
    others = [a for a in answers if a.name != winner]
    prompt = (
        f"Your answer won the vote ({tally.get(winner, 0)} of {len(names)} votes). The other answers were:\n\n"
        f"{_candidates_text(others)}\n\nPresent the final answer to the task, improving yours with anything "
        "useful from the others. Reply with the answer only."
    )
    history = [*engine.task_messages, Message.assistant(own.text)]
    try:
        presented = await engine.step(winner, prompt, history, phase="present", via="won the vote")
    except StepFailedError:
        details["presented"] = False  # the winner could not present: its answer stands
        return own.output
    details["presented"] = True
    return presented.output


def _exact_agent(text: str, names: Sequence[str]) -> str | None:
    cleaned = re.sub(r"^(pick|vote|winner|agent|answer)\s*[:\-]\s*", "", text.strip(), flags=re.IGNORECASE)
    cleaned = cleaned.strip(" \t\n.,:;!*#\"'`()[]").casefold()
    return next((n for n in names if n.casefold() == cleaned), None)


def pick_agent(text: str, names: Sequence[str]) -> str | None:
    """The agent an answer names: its first line when that is exactly a name, else the earliest name in it."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:
        exact = _exact_agent(lines[0], names)
        if exact is not None:
            return exact
    best: tuple[int, str] | None = None
    for name in names:
        match = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, flags=re.IGNORECASE)
        if match is not None and (best is None or match.start() < best[0]):
            best = (match.start(), name)
    return best[1] if best is not None else None


# -------------------------------------------------------------------------------------- adaptive


async def run_adaptive(engine: RunEngine, strategy: Adaptive) -> Any:
    router = strategy.router
    workers = [n for n in engine.order if n != router]
    transcript = list(engine.task_messages)
    current = strategy.first_agent(engine.order)
    via = "start"
    path: list[str] = []
    details = engine.result.details
    details["path"] = path
    last_worker: AgentRunResult | None = None
    while True:
        path.append(current)
        phase = "route" if current == router else "run"
        record = await engine.step(current, transcript[-1], transcript[:-1], phase=phase, via=via)
        answered = record.answered_by or current
        names = {
            "output": record.output, "text": record.text, "input": engine.task_text, "agent": answered,
            "step": engine.steps, "outputs": dict(engine.outputs),
        }
        target: str | None = None
        for route in strategy.routes:
            if route.source not in (None, current, answered):
                continue
            condition = route.condition
            if condition is None or condition.evaluate(names):
                target, via = route.to, f"route {route.describe()}"
                break
        if target is None and current == router:
            target = pick_agent(record.text, workers)
            via = f"chosen by {router}"
            if target is None:
                details["ended_by"] = router
                if last_worker is not None and _is_end_word(record.text):
                    return last_worker.output
                return record.output
        if current != router:
            transcript.append(agent_message(answered, record.text))
            last_worker = record
        if target is None or target == END:
            details["ended_by"] = "route" if target == END else current
            if current == router and last_worker is not None:
                return last_worker.output
            return record.output
        current = target


def _is_end_word(text: str) -> bool:
    cleaned = text.strip().strip(".!*#\"'`").casefold()
    return not cleaned or cleaned in _END_WORDS


# ------------------------------------------------------------------------------------------ loop


async def run_loop(engine: RunEngine, strategy: Loop) -> Any:
    generator, evaluator = strategy.generator, strategy.evaluator
    condition = strategy.condition
    conversation = list(engine.task_messages)  # the generator's: task, then draft / feedback turns
    details = engine.result.details
    draft: AgentRunResult | None = None
    for iteration in range(1, strategy.max_iterations + 1):
        details["iterations"] = iteration
        draft = await engine.step(generator, conversation[-1], conversation[:-1], phase="generate",
                                  via=f"iteration {iteration}")
        conversation.append(Message.assistant(draft.text))
        verdict = await engine.step(evaluator, agent_message(generator, draft.text), engine.task_messages,
                                    phase="evaluate", via=f"iteration {iteration}")
        names = {
            "output": verdict.output, "text": verdict.text, "input": engine.task_text, "agent": evaluator,
            "step": engine.steps, "iteration": iteration, "outputs": dict(engine.outputs),
        }
        if condition.evaluate(names):
            details["accepted"] = True
            return draft.output
        conversation.append(agent_message(evaluator, verdict.text))
    details["accepted"] = False
    assert draft is not None
    return draft.output

