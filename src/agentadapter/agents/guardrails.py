"""Guardrails: checks on a run's input and final output that can stop the run (a tripwire).

A guardrail is a function ``(context, value) -> GuardrailResult | bool`` (sync or async), or an
agent used as a classifier (:meth:`InputGuardrail.from_agent`). Input guardrails see the user text
of the run's input once, before the first model call; output guardrails see the final output (text
or typed object) of the agent that gives it. Every verdict is recorded in the result; a tripped one
stops the run with :class:`~agentadapter.agents.errors.GuardrailTripped` (its ``result`` attribute
holds the run so far). A classifier agent's usage and cost count toward the run's totals.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias, overload

from agentadapter.llm.errors import ConfigurationError, InvalidRequestError

if TYPE_CHECKING:
    from agentadapter.agents.base import BaseAgent
    from agentadapter.agents.context import AgentContext

__all__ = [
    "GuardrailFunction",
    "GuardrailResult",
    "InputGuardrail",
    "OutputGuardrail",
    "coerce_guardrail",
    "input_guardrail",
    "output_guardrail",
]


@dataclass(slots=True)
class GuardrailResult:
    """A guardrail's verdict: ``tripwire_triggered`` stops the run; ``info`` explains it."""

    tripwire_triggered: bool = False
    info: Any = None


GuardrailFunction: TypeAlias = Callable[
    ["AgentContext", Any], "GuardrailResult | bool | Awaitable[GuardrailResult | bool]"
]


def _verdict(value: Any, name: str) -> GuardrailResult:
    if isinstance(value, GuardrailResult):
        return value
    if isinstance(value, bool):
        return GuardrailResult(tripwire_triggered=value)
    raise InvalidRequestError(
        f"guardrail {name!r} returned a {type(value).__name__}; return GuardrailResult(tripwire_triggered=..., "
        "info=...) or a bool (True trips the wire)"
    )


@dataclass(slots=True)
class _Guardrail:
    function: GuardrailFunction
    name: str = ""
    kind: ClassVar[Literal["input", "output"]] = "input"

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise InvalidRequestError(f"a guardrail needs a function, got {type(self.function).__name__}")
        if not self.name:
            self.name = str(getattr(self.function, "__name__", None) or type(self.function).__name__)

    async def check(self, context: AgentContext, value: Any) -> GuardrailResult:
        """Run the guardrail on ``value``."""
        outcome = self.function(context, value)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return _verdict(outcome, self.name)


def _classifier(agent: BaseAgent, trip_if: Callable[[Any], bool] | None) -> GuardrailFunction:
    async def classify(context: AgentContext, value: Any) -> GuardrailResult:
        text = value if isinstance(value, str) else _as_text(value)
        result = await context.run_agent(agent, text)
        output = result.output
        if trip_if is not None:
            return GuardrailResult(bool(trip_if(output)), output)
        triggered = (
            output.get("tripwire_triggered") if isinstance(output, Mapping)
            else getattr(output, "tripwire_triggered", output)
        )
        if not isinstance(triggered, bool):
            raise ConfigurationError(
                f"classifier agent {agent.name!r} answered {output!r}; give it an output_type with a boolean "
                "'tripwire_triggered' field, or pass trip_if=lambda output: ... to decide from its answer"
            )
        return GuardrailResult(triggered, output)

    classify.__name__ = agent.name
    return classify


def _as_text(value: Any) -> str:
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    import json

    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


@dataclass(slots=True)
class InputGuardrail(_Guardrail):
    """Checks the user text of the run's input before the first model call."""

    kind: ClassVar[Literal["input", "output"]] = "input"

    @classmethod
    def from_agent(
        cls, agent: BaseAgent, *, trip_if: Callable[[Any], bool] | None = None, name: str | None = None
    ) -> InputGuardrail:
        """An agent as a classifier: it reads the input; its output decides.

        Without ``trip_if`` the output must carry a boolean ``tripwire_triggered`` (a field of its
        ``output_type``) or be a bool.
        """
        return cls(_classifier(agent, trip_if), name or agent.name)


@dataclass(slots=True)
class OutputGuardrail(_Guardrail):
    """Checks the final output (text or typed object) before the run returns it."""

    kind: ClassVar[Literal["input", "output"]] = "output"

    @classmethod
    def from_agent(
        cls, agent: BaseAgent, *, trip_if: Callable[[Any], bool] | None = None, name: str | None = None
    ) -> OutputGuardrail:
        """An agent as a classifier of the final output (see :meth:`InputGuardrail.from_agent`)."""
        return cls(_classifier(agent, trip_if), name or agent.name)


@overload
def input_guardrail(function: GuardrailFunction, /) -> InputGuardrail: ...
@overload
def input_guardrail(*, name: str | None = None) -> Callable[[GuardrailFunction], InputGuardrail]: ...
def input_guardrail(
    function: GuardrailFunction | None = None, /, *, name: str | None = None
) -> InputGuardrail | Callable[[GuardrailFunction], InputGuardrail]:
    """``@input_guardrail`` or ``@input_guardrail(name=...)`` over ``(context, text) -> verdict``."""
    if function is not None:
        return InputGuardrail(function, name or "")
    return lambda fn: InputGuardrail(fn, name or "")


@overload
def output_guardrail(function: GuardrailFunction, /) -> OutputGuardrail: ...
@overload
def output_guardrail(*, name: str | None = None) -> Callable[[GuardrailFunction], OutputGuardrail]: ...
def output_guardrail(
    function: GuardrailFunction | None = None, /, *, name: str | None = None
) -> OutputGuardrail | Callable[[GuardrailFunction], OutputGuardrail]:
    """``@output_guardrail`` or ``@output_guardrail(name=...)`` over ``(context, output) -> verdict``."""
    if function is not None:
        return OutputGuardrail(function, name or "")
    return lambda fn: OutputGuardrail(fn, name or "")


@overload
def coerce_guardrail(value: Any, kind: Literal["input"]) -> InputGuardrail: ...
@overload
def coerce_guardrail(value: Any, kind: Literal["output"]) -> OutputGuardrail: ...
def coerce_guardrail(value: Any, kind: Literal["input", "output"]) -> InputGuardrail | OutputGuardrail:
    """A guardrail from a guardrail, a function, or an agent (a classifier)."""
    from agentadapter.agents.base import BaseAgent

    target: type[InputGuardrail] | type[OutputGuardrail] = InputGuardrail if kind == "input" else OutputGuardrail
    if isinstance(value, target):
        return value
    if isinstance(value, _Guardrail):
        raise InvalidRequestError(
            f"guardrail {value.name!r} is an {value.kind} guardrail; it cannot go in {kind}_guardrails"
        )
    if isinstance(value, BaseAgent):
        return target.from_agent(value)
    if callable(value):
        return target(value)
    raise InvalidRequestError(
        f"cannot use a {type(value).__name__} as an {kind} guardrail; pass a function (context, value) -> "
        "GuardrailResult | bool, a guardrail, or a classifier agent"
    )
