"""The four strategies as data: :class:`Sequential`, :class:`Parallel`, :class:`Adaptive`, :class:`Loop`.

A strategy says which agents run in which order and how their outputs become the run's output; it
names agents and never holds them, so one strategy object serves many runs. :func:`coerce_strategy`
accepts the objects or their names (``"sequential"``, ``"parallel"``, or an aggregation name such as
``"vote"``), and :meth:`Strategy.check` verifies, before anything runs, that every agent a strategy
names is among the run's agents. The execution of each strategy lives in
:mod:`agentadapter.orchestrator._strategies`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from agentadapter.orchestrator.conditions import Condition
from agentadapter.orchestrator.errors import StrategyError

__all__ = [
    "END",
    "Adaptive",
    "Aggregate",
    "Loop",
    "Parallel",
    "Route",
    "Sequential",
    "Strategy",
    "StrategyName",
    "coerce_strategy",
]

Aggregate: TypeAlias = Literal["concat", "vote", "judge", "first"]
StrategyName: TypeAlias = Literal["sequential", "parallel", "adaptive", "loop"]

END = "END"
"""A route's ``to`` that ends the run (also what a router may answer)."""

DEFAULT_ROUTED_STEPS = 25
"""Step limit of adaptive and loop runs whose limits set none: they may cycle."""


def _check_names(kind: str, names: Sequence[tuple[str, str | None]], agents: Collection[str]) -> None:
    for role, name in names:
        if name is not None and name not in agents:
            raise StrategyError(
                f"the {kind} strategy's {role} is {name!r}, which is not among the run's agents "
                f"({', '.join(sorted(agents)) or 'none'})"
            )


@dataclass(slots=True, frozen=True)
class Sequential:
    """Each agent in turn: its output becomes the next one's input, and the conversation accumulates."""

    agents: tuple[str, ...] = ()
    """The order (default: the order the agents were given)."""

    name: StrategyName = field(default="sequential", init=False)

    def check(self, agents: Collection[str]) -> None:
        _check_names("sequential", [("agent", n) for n in self.agents], agents)

    def describe(self) -> str:
        return "sequential"


@dataclass(slots=True, frozen=True)
class Parallel:
    """Every agent on the task at once, then one aggregate of their answers.

    ``concat`` joins the answers; ``vote`` shows each agent the others' answers, collects one vote
    from each, and has the winner present the final answer; ``judge`` has the ``judge`` agent pick
    one answer or merge them; ``first`` takes the first success and cancels the rest. A failing
    agent is dropped (and recorded); the run goes on while ``quorum`` agents can still succeed.
    """

    aggregate: Aggregate = "concat"
    judge: str | None = None
    """The agent that picks or merges (``aggregate="judge"``); it is not one of the group."""
    quorum: int = 1
    """Successful answers needed; fewer, and the run fails."""
    agents: tuple[str, ...] = ()
    """The group (default: every agent but the judge)."""
    max_concurrency: int | None = None
    """At most this many agents at once; None: all of them."""

    name: StrategyName = field(default="parallel", init=False)

    def __post_init__(self) -> None:
        if self.aggregate not in ("concat", "vote", "judge", "first"):
            raise StrategyError(f"parallel aggregate must be concat, vote, judge or first, not {self.aggregate!r}")
        if self.aggregate == "judge" and not self.judge:
            raise StrategyError("parallel aggregate 'judge' needs judge=<agent name> (the agent that picks or merges)")
        if self.quorum < 1:
            raise StrategyError("a parallel quorum must be at least 1")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise StrategyError("max_concurrency must be at least 1 (or None)")

    def group(self, agents: Sequence[str]) -> list[str]:
        return list(self.agents) if self.agents else [a for a in agents if a != self.judge]

    def check(self, agents: Collection[str]) -> None:
        _check_names("parallel", [("judge", self.judge), *(("agent", n) for n in self.agents)], agents)
        size = len(self.group(list(agents)))
        if size == 0:
            raise StrategyError("a parallel run needs at least one agent besides the judge")
        if self.quorum > size:
            raise StrategyError(f"the parallel quorum is {self.quorum} but the group has only {size} agent(s)")

    def describe(self) -> str:
        return f"parallel/{self.aggregate}"


@dataclass(slots=True, frozen=True)
class Route:
    """After agent ``source`` (any agent when None) answers, go to ``to`` (an agent or ``END``) if ``when`` holds.

    ``Route("triage", "billing", "output contains 'invoice'")``; a workflow writes
    ``{from: triage, to: billing, when: "..."}``.
    """

    source: str | None
    to: str
    when: Condition | str | None = None
    """A condition (see :mod:`agentadapter.orchestrator.conditions`); None: always."""

    def __post_init__(self) -> None:
        if isinstance(self.when, str):
            object.__setattr__(self, "when", Condition(self.when))

    @property
    def condition(self) -> Condition | None:
        return self.when if isinstance(self.when, Condition) else None

    def describe(self) -> str:
        when = f" when {self.condition}" if self.condition is not None else ""
        return f"{self.source or '*'} -> {self.to}{when}"


@dataclass(slots=True, frozen=True)
class Adaptive:
    """The next agent is chosen as the run goes: by conditions on outputs, and/or by a router agent.

    The run starts at ``start`` (default: the router, else the first agent). After each step the
    routes whose ``source`` is that agent (or any) are tried in order, and the first whose condition
    holds decides; if none does and the agent was the router, the agent its answer names is next
    (an answer naming none, or ``END``, ends the run); otherwise the run ends with that output.
    Cycles are allowed: the run's ``max_steps`` (default 25) bounds them.
    """

    router: str | None = None
    routes: tuple[Route, ...] = ()
    start: str | None = None

    name: StrategyName = field(default="adaptive", init=False)

    def __post_init__(self) -> None:
        if not self.router and not self.routes:
            raise StrategyError("an adaptive strategy needs a router agent, routes, or both")
        object.__setattr__(self, "routes", tuple(self.routes))

    def check(self, agents: Collection[str]) -> None:
        names: list[tuple[str, str | None]] = [("router", self.router), ("start", self.start)]
        for index, route in enumerate(self.routes):
            names.append((f"routes[{index}].from", route.source))
            names.append((f"routes[{index}].to", None if route.to == END else route.to))
        _check_names("adaptive", names, agents)

    def first_agent(self, agents: Sequence[str]) -> str:
        return self.start or self.router or agents[0]

    def describe(self) -> str:
        return "adaptive"


@dataclass(slots=True, frozen=True)
class Loop:
    """A generator and an evaluator alternate until the evaluator accepts or ``max_iterations``.

    The generator drafts; the evaluator gets the task and the draft; its answer accepts when
    ``until`` holds (default ``accepted(output)``: a first word such as APPROVED, ACCEPT or LGTM, or a
    typed answer with a true ``accepted`` field). Otherwise its answer goes back to the generator as
    feedback. The run's output is the last draft; ``details`` says whether it was accepted.
    """

    generator: str
    evaluator: str
    max_iterations: int = 3
    until: Condition | str | None = None

    name: StrategyName = field(default="loop", init=False)

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise StrategyError("a loop's max_iterations must be at least 1")
        if self.generator == self.evaluator:
            raise StrategyError("a loop needs two different agents as generator and evaluator")
        if isinstance(self.until, str):
            object.__setattr__(self, "until", Condition(self.until))

    @property
    def condition(self) -> Condition:
        return self.until if isinstance(self.until, Condition) else _ACCEPTED

    def check(self, agents: Collection[str]) -> None:
        _check_names("loop", [("generator", self.generator), ("evaluator", self.evaluator)], agents)

    def describe(self) -> str:
        return "loop"


_ACCEPTED = Condition("accepted(output)")

Strategy: TypeAlias = Sequential | Parallel | Adaptive | Loop


def coerce_strategy(value: Strategy | str) -> Strategy:
    """A strategy object from itself or a name: ``sequential``, ``parallel``, ``concat``, ``vote``, ``first``."""
    if isinstance(value, Sequential | Parallel | Adaptive | Loop):
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name == "sequential":
            return Sequential()
        if name == "parallel":
            return Parallel()
        if name in ("concat", "vote", "first"):
            return Parallel(aggregate=name)  # type: ignore[arg-type]
        if name in ("judge", "adaptive", "loop"):
            raise StrategyError(
                f"the {name} strategy needs settings: pass "
                + {"judge": "Parallel(aggregate='judge', judge='<agent>')",
                   "adaptive": "Adaptive(router=..., routes=[...])",
                   "loop": "Loop(generator=..., evaluator=...)"}[name]
            )
    raise StrategyError(
        f"unknown strategy {value!r}; use sequential, parallel (concat, vote, first), or a Sequential, "
        "Parallel, Adaptive or Loop object"
    )
