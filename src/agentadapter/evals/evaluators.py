"""Evaluators: each looks at one answer to one case and gives a :class:`Score` in [0, 1] with a reason.

The kinds, and their spec ``type`` when written as data (a dataset's ``evaluators:``, the API):

========================  ===============  ============================================================
class                     spec type        scores
========================  ===============  ============================================================
:class:`ExactMatch`       ``exact``        1 when the answer equals the expected output (text, trimmed)
:class:`Contains`         ``contains``     the share of the wanted substrings the answer contains
:class:`RegexMatch`       ``regex``        1 when the pattern is found in the answer
:class:`JSONSchemaValid`  ``json_schema``  1 when the answer (or its JSON text) validates
:class:`NumericClose`     ``numeric``      1 when the answer's number is within a tolerance of expected
:class:`ToolCalled`       ``tool_call``    1 for the named tool called with the given arguments, 0.5 for
                                           the tool with other arguments, else 0
:class:`LLMJudge`         ``judge``        a model's grade against a rubric (its cost kept apart)
:class:`SemanticSimilar`  ``similarity``   cosine similarity of answer and expected through ``LLM.embed``
:class:`MaxLatency`       ``latency``      1 within ``max_ms``
:class:`MaxCost`          ``cost``         1 within ``max_usd``
:class:`FunctionEvaluator`  (Python only)  whatever a plain function returns
========================  ===============  ============================================================

A subject that failed gets 0 from every evaluator, with the error as the reason. :func:`from_spec`
builds evaluators from data; ``trusted=False`` (data a tenant wrote) refuses what could stall the
process: schemas that are unsafe to walk or that carry regular expressions, and patterns when the
``regex`` package (which bounds a match's time) is not installed. Function evaluators exist only in
Python, never from data.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentadapter.errors import InvalidRequestError
from agentadapter.evals.dataset import Case
from agentadapter.evals.subjects import SubjectOutput

if TYPE_CHECKING:
    from agentadapter.llm.client import LLM

__all__ = [
    "Contains",
    "EvalContext",
    "Evaluator",
    "ExactMatch",
    "FunctionEvaluator",
    "JSONSchemaValid",
    "LLMJudge",
    "MaxCost",
    "MaxLatency",
    "NumericClose",
    "RegexMatch",
    "Score",
    "SemanticSimilar",
    "ToolCalled",
    "from_spec",
]

REGEX_TIMEOUT_S = 0.1
"""How long one pattern match may take on an answer (with the ``regex`` package)."""


@dataclass(slots=True, frozen=True)
class Score:
    """One evaluator's verdict on one answer."""

    name: str
    value: float
    """In [0, 1]; 1 is best."""
    reason: str = ""
    cost_usd: float = 0.0
    """What the evaluation itself cost (a judge's or an embedding call), kept apart from the subject's."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "reason": self.reason, "cost_usd": self.cost_usd}


@dataclass(slots=True, frozen=True)
class EvalContext:
    """What an evaluator sees: the case, the subject's answer, and the facade for model-based checks."""

    case: Case
    answer: SubjectOutput
    llm: LLM | None = None


def _clamp(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, value))


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


class Evaluator(ABC):
    """Scores an answer; subclasses write :meth:`score`."""

    name: str = "evaluator"

    async def evaluate(self, context: EvalContext) -> Score:
        if context.answer.error is not None:
            return Score(self.name, 0.0, f"no answer ({context.answer.error})")
        score = self.score(context)
        if inspect.isawaitable(score):
            score = await score
        return Score(score.name, _clamp(float(score.value)), score.reason, score.cost_usd)

    @abstractmethod
    def score(self, context: EvalContext) -> Score | Awaitable[Score]:
        """The score of a successful answer."""

    def _expected(self, context: EvalContext, given: Any) -> Any:
        value = given if given is not None else context.case.expected
        if value is None:
            raise InvalidRequestError(f"evaluator {self.name!r}: case {context.case.id!r} has no expected output and "
                                      "the evaluator names none")
        return value


class ExactMatch(Evaluator):
    """The answer equals the expected output (text compared trimmed; ``case_sensitive`` by default)."""

    def __init__(self, expected: Any = None, *, case_sensitive: bool = True, name: str = "exact") -> None:
        self.expected, self.case_sensitive, self.name = expected, case_sensitive, name

    def score(self, context: EvalContext) -> Score:
        expected = self._expected(context, self.expected)
        if not isinstance(expected, str) and context.answer.output == expected:
            return Score(self.name, 1.0, "the output equals the expected value")
        got, want = context.answer.text.strip(), _as_text(expected).strip()
        if not self.case_sensitive:
            got, want = got.casefold(), want.casefold()
        if got == want:
            return Score(self.name, 1.0, "the answer equals the expected text")
        return Score(self.name, 0.0, f"expected {want[:80]!r}, got {got[:80]!r}")


class Contains(Evaluator):
    """The answer contains the text (or each of the texts; the score is the share found)."""

    def __init__(self, value: str | Sequence[str] | None = None, *, case_sensitive: bool = False,
                 name: str = "contains") -> None:
        self.value, self.case_sensitive, self.name = value, case_sensitive, name

    def score(self, context: EvalContext) -> Score:
        wanted = self._expected(context, self.value)
        needles = [_as_text(w) for w in wanted] if isinstance(wanted, list | tuple) else [_as_text(wanted)]
        text = context.answer.text if self.case_sensitive else context.answer.text.casefold()
        missing = [n for n in needles if (n if self.case_sensitive else n.casefold()) not in text]
        if not missing:
            return Score(self.name, 1.0, f"contains all {len(needles)} of the expected text(s)")
        found = len(needles) - len(missing)
        return Score(self.name, found / len(needles), f"missing {', '.join(repr(m[:40]) for m in missing[:3])}")


class RegexMatch(Evaluator):
    """The pattern is found in the answer (``re.search``; the ``regex`` package, with a time bound, when installed)."""

    def __init__(self, pattern: str, *, name: str = "regex", flags: int = 0) -> None:
        self.name, self.pattern_text = name, pattern
        try:
            import regex

            self._compiled: Any = regex.compile(pattern, flags)
            self._bounded = True
        except ImportError:
            self._compiled, self._bounded = None, False
        except Exception as exc:  # regex.error
            raise InvalidRequestError(f"evaluator {name!r}: the pattern does not compile: {exc}") from exc
        if self._compiled is None:
            try:
                self._compiled = re.compile(pattern, flags)
            except re.error as exc:
                raise InvalidRequestError(f"evaluator {name!r}: the pattern does not compile: {exc}") from exc

    def score(self, context: EvalContext) -> Score:
        try:
            found = (self._compiled.search(context.answer.text, timeout=REGEX_TIMEOUT_S) if self._bounded
                     else self._compiled.search(context.answer.text))
        except TimeoutError:
            return Score(self.name, 0.0, f"the pattern took longer than {REGEX_TIMEOUT_S}s on the answer")
        if found:
            return Score(self.name, 1.0, f"matched {found.group(0)[:60]!r}")
        return Score(self.name, 0.0, f"no match for /{self.pattern_text[:60]}/")


def _json_of(answer: SubjectOutput) -> tuple[Any, str | None]:
    if not isinstance(answer.output, str):
        return answer.output, None
    text = answer.text.strip()
    if text.startswith("```"):  # a fenced block: the JSON inside it
        text = text.strip("`").removeprefix("json").strip()
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"the answer is not JSON ({exc})"


class JSONSchemaValid(Evaluator):
    """The answer (a typed output, or its text as JSON) validates against the schema."""

    def __init__(self, schema: Mapping[str, Any], *, name: str = "json_schema") -> None:
        try:
            import jsonschema
        except ImportError as exc:  # pragma: no cover - jsonschema comes with the server extra
            raise InvalidRequestError("the json_schema evaluator needs jsonschema: pip install "
                                      "'agentadapter[server]'") from exc
        try:
            validator_class = jsonschema.validators.validator_for(schema)
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidRequestError(f"evaluator {name!r}: not a valid JSON schema: {exc.message}") from exc
        self.name, self.schema = name, dict(schema)
        self._validator = validator_class(schema)

    def score(self, context: EvalContext) -> Score:
        value, problem = _json_of(context.answer)
        if problem is not None:
            return Score(self.name, 0.0, problem)
        error = next(iter(self._validator.iter_errors(value)), None)
        if error is None:
            return Score(self.name, 1.0, "valid against the schema")
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Score(self.name, 0.0, f"{where}: {error.message[:120]}")


_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def _number_in(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _NUMBER.search(_as_text(value))
    if match is None:
        return None
    try:
        return float(match.group(0).replace(",", ""))
    except ValueError:
        return None


class NumericClose(Evaluator):
    """The first number in the answer is within ``tolerance`` of the expected one (``relative``: a fraction of it)."""

    def __init__(self, expected: float | None = None, *, tolerance: float = 1e-6, relative: bool = False,
                 name: str = "numeric") -> None:
        if tolerance < 0:
            raise InvalidRequestError(f"evaluator {name!r}: tolerance must be 0 or more")
        self.expected, self.tolerance, self.relative, self.name = expected, tolerance, relative, name

    def score(self, context: EvalContext) -> Score:
        want = _number_in(self._expected(context, self.expected))
        if want is None:
            raise InvalidRequestError(f"evaluator {self.name!r}: case {context.case.id!r}: the expected value is not "
                                      "a number")
        got = _number_in(context.answer.output if not isinstance(context.answer.output, str) else context.answer.text)
        if got is None:
            return Score(self.name, 0.0, "the answer has no number")
        bound = self.tolerance * abs(want) if self.relative else self.tolerance
        if abs(got - want) <= bound:
            return Score(self.name, 1.0, f"{got:g} is within {bound:g} of {want:g}")
        return Score(self.name, 0.0, f"{got:g} is {abs(got - want):g} away from {want:g} (tolerance {bound:g})")


def _matches(arguments: Any, expected: Mapping[str, Any]) -> bool:
    return isinstance(arguments, Mapping) and all(arguments.get(k) == v for k, v in expected.items())


class ToolCalled(Evaluator):
    """The answer's run called ``tool`` (with ``arguments`` among its arguments, when given)."""

    def __init__(self, tool: str, arguments: Mapping[str, Any] | None = None, *, name: str | None = None) -> None:
        if not tool:
            raise InvalidRequestError("a tool_call evaluator needs the tool's name")
        self.tool, self.arguments = tool, dict(arguments) if arguments is not None else None
        self.name = name or f"tool:{tool}"

    def score(self, context: EvalContext) -> Score:
        calls = [c for c in context.answer.tool_calls if c.get("name") == self.tool]
        if not calls:
            made = sorted({str(c.get("name")) for c in context.answer.tool_calls})
            return Score(self.name, 0.0, f"{self.tool} was not called (called: {', '.join(made) or 'nothing'})")
        if self.arguments is None or any(_matches(c.get("arguments"), self.arguments) for c in calls):
            return Score(self.name, 1.0, f"{self.tool} was called as expected")
        return Score(self.name, 0.5, f"{self.tool} was called with {_as_text(calls[0].get('arguments'))[:100]}, "
                                     f"expected {_as_text(self.arguments)[:100]}")


_JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}

_JUDGE_PROMPT = """You grade an answer against a rubric. Reply with a score from 0 (fails the rubric) to 1 \
(fully meets it) and a one-sentence reason.

Rubric:
{rubric}

Input:
{input}
{expected}
Answer:
{answer}"""


class LLMJudge(Evaluator):
    """A model grades the answer against ``rubric`` (structured output ``{score, reason}``); its cost is its own."""

    def __init__(self, model: str, rubric: str, *, name: str = "judge", max_answer_chars: int = 8000) -> None:
        if not model or not rubric:
            raise InvalidRequestError("a judge evaluator needs a model and a rubric")
        self.model, self.rubric, self.name, self.max_answer_chars = model, rubric, name, max_answer_chars

    async def score(self, context: EvalContext) -> Score:
        if context.llm is None:
            raise InvalidRequestError(f"evaluator {self.name!r} calls a model: give the experiment an llm")
        reference = context.case.expected
        expected = f"\nReference answer:\n{_as_text(reference)}\n" if reference is not None else ""
        prompt = _JUDGE_PROMPT.format(rubric=self.rubric, input=context.case.input_text[: self.max_answer_chars],
                                      expected=expected, answer=context.answer.text[: self.max_answer_chars])
        response = await context.llm.generate(self.model, prompt, output=_JUDGE_SCHEMA, temperature=0,
                                              tags={"source": "eval_judge"})
        verdict = response.output if isinstance(response.output, Mapping) else {}
        value = _number_in(verdict.get("score"))
        if value is None:
            return Score(self.name, 0.0, f"the judge gave no score ({response.text[:80]!r})", response.cost_usd or 0.0)
        return Score(self.name, value, str(verdict.get("reason", ""))[:300], response.cost_usd or 0.0)


class SemanticSimilar(Evaluator):
    """Cosine similarity of the answer and the expected output, embedded by ``model`` (negative counts as 0)."""

    def __init__(self, model: str, expected: str | None = None, *, name: str = "similarity") -> None:
        if not model:
            raise InvalidRequestError("a similarity evaluator needs an embedding model")
        self.model, self.expected, self.name = model, expected, name

    async def score(self, context: EvalContext) -> Score:
        if context.llm is None:
            raise InvalidRequestError(f"evaluator {self.name!r} embeds: give the experiment an llm")
        want = _as_text(self._expected(context, self.expected))
        got = context.answer.text
        if not got.strip():
            return Score(self.name, 0.0, "the answer is empty")
        embedded = await context.llm.embed(self.model, [got, want], tags={"source": "eval_similarity"})
        a, b = embedded.vectors
        norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(x * x for x in b))
        cosine = sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0
        return Score(self.name, cosine, f"cosine similarity {cosine:.3f}", embedded.cost_usd or 0.0)


class MaxLatency(Evaluator):
    """The answer came within ``max_ms`` milliseconds."""

    def __init__(self, max_ms: float, *, name: str = "latency") -> None:
        if max_ms <= 0:
            raise InvalidRequestError("a latency evaluator's max_ms must be positive")
        self.max_ms, self.name = max_ms, name

    def score(self, context: EvalContext) -> Score:
        took = context.answer.latency_ms
        ok = took <= self.max_ms
        return Score(self.name, 1.0 if ok else 0.0, f"{took:.0f} ms {'<=' if ok else '>'} {self.max_ms:g} ms")


class MaxCost(Evaluator):
    """The answer cost at most ``max_usd``."""

    def __init__(self, max_usd: float, *, name: str = "cost") -> None:
        if max_usd < 0:
            raise InvalidRequestError("a cost evaluator's max_usd must be 0 or more")
        self.max_usd, self.name = max_usd, name

    def score(self, context: EvalContext) -> Score:
        cost = context.answer.cost_usd
        ok = cost <= self.max_usd
        return Score(self.name, 1.0 if ok else 0.0, f"${cost:.6f} {'<=' if ok else '>'} ${self.max_usd:g}")


ScoreFunction = Callable[[Case, SubjectOutput], Any]


class FunctionEvaluator(Evaluator):
    """A plain function ``(case, answer)``, sync or async, giving a bool, a number, ``(number, reason)`` or a Score."""

    def __init__(self, function: ScoreFunction, *, name: str | None = None) -> None:
        self.function = function
        self.name = name or str(getattr(function, "__name__", "function"))

    async def score(self, context: EvalContext) -> Score:
        result = self.function(context.case, context.answer)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Score):
            return result
        reason = ""
        if isinstance(result, tuple) and len(result) == 2:
            result, reason = result
        if isinstance(result, bool):
            return Score(self.name, 1.0 if result else 0.0, reason or ("passed" if result else "failed"))
        if isinstance(result, int | float):
            return Score(self.name, float(result), reason)
        raise InvalidRequestError(f"evaluator function {self.name!r} returned {type(result).__name__}; return a "
                                  "bool, a number in [0, 1], (number, reason) or a Score")


# --------------------------------------------------------------------------------------- from data

_REGEX_KEYS = ("pattern", "patternProperties")


def _has_regex_keywords(schema: Any) -> bool:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if any(k in node for k in _REGEX_KEYS) or node.get("format") == "regex":
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _get(spec: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, *,
         required: bool = False) -> Any:
    value = spec.get(key)
    if value is None:
        if required:
            raise InvalidRequestError(f"{where}: '{key}' is required for a {spec.get('type')} evaluator")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise InvalidRequestError(f"{where}: '{key}' has the wrong type ({type(value).__name__})")
    return value


_SPEC_KEYS: dict[str, set[str]] = {
    "exact": {"expected", "case_sensitive"},
    "contains": {"value", "case_sensitive"},
    "regex": {"pattern", "ignore_case"},
    "json_schema": {"schema"},
    "numeric": {"expected", "tolerance", "relative"},
    "tool_call": {"tool", "arguments"},
    "judge": {"model", "rubric"},
    "similarity": {"model", "expected"},
    "latency": {"max_ms"},
    "cost": {"max_usd"},
}


def from_spec(spec: Mapping[str, Any] | str, *, where: str = "evaluator", trusted: bool = True) -> Evaluator:
    """An evaluator from its spec (``{"type": "contains", "value": "Paris"}``, or just ``"exact"``).

    ``trusted=False`` for data a tenant wrote: see the module docstring.
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    kind = spec.get("type")
    if kind not in _SPEC_KEYS:
        raise InvalidRequestError(f"{where}: unknown evaluator type {kind!r}; use one of {', '.join(_SPEC_KEYS)}")
    unknown = sorted(set(spec) - _SPEC_KEYS[kind] - {"type", "name"})
    if unknown:
        raise InvalidRequestError(f"{where}: unknown field(s) {', '.join(unknown)} for a {kind} evaluator; it takes "
                                  f"{', '.join(sorted(_SPEC_KEYS[kind] | {'name'}))}")
    name = _get(spec, "name", str, where)
    named: dict[str, Any] = {"name": name} if name else {}
    number = (int, float)
    if kind == "exact":
        return ExactMatch(spec.get("expected"), case_sensitive=bool(spec.get("case_sensitive", True)), **named)
    if kind == "contains":
        return Contains(_get(spec, "value", (str, list), where), case_sensitive=bool(spec.get("case_sensitive", False)),
                        **named)
    if kind == "regex":
        pattern = _get(spec, "pattern", str, where, required=True)
        if not trusted:
            try:
                import regex  # noqa: F401 - the time bound on matches comes from it
            except ImportError as exc:
                raise InvalidRequestError(f"{where}: regex evaluators need the 'regex' package on this server; use "
                                          "contains or exact") from exc
            if len(pattern) > 1000:
                raise InvalidRequestError(f"{where}: the pattern is longer than 1000 characters")
        return RegexMatch(pattern, flags=re.IGNORECASE if spec.get("ignore_case") else 0, **named)
    if kind == "json_schema":
        schema = _get(spec, "schema", dict, where, required=True)
        if not trusted:
            from agentadapter.llm.schema_safety import check_schema

            check_schema(schema, f"{where}.schema")
            if _has_regex_keywords(schema):
                raise InvalidRequestError(f"{where}.schema: pattern and patternProperties are not accepted here; "
                                          "use a regex evaluator for patterns")
        return JSONSchemaValid(schema, **named)
    if kind == "numeric":
        expected = _get(spec, "expected", number, where)
        tolerance = _get(spec, "tolerance", number, where)
        return NumericClose(expected, tolerance=float(tolerance) if tolerance is not None else 1e-6,
                            relative=bool(spec.get("relative", False)), **named)
    if kind == "tool_call":
        return ToolCalled(_get(spec, "tool", str, where, required=True), _get(spec, "arguments", dict, where),
                          name=name)
    if kind == "judge":
        return LLMJudge(_get(spec, "model", str, where, required=True), _get(spec, "rubric", str, where, required=True),
                        **named)
    if kind == "similarity":
        return SemanticSimilar(_get(spec, "model", str, where, required=True), _get(spec, "expected", str, where),
                               **named)
    if kind == "latency":
        return MaxLatency(float(_get(spec, "max_ms", number, where, required=True)), **named)
    return MaxCost(float(_get(spec, "max_usd", number, where, required=True)), **named)


def model_names(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The models the specs call (judges and embedders), so a service can check a tenant may use them."""
    return [str(s["model"]) for s in specs if isinstance(s, Mapping) and s.get("type") in ("judge", "similarity")
            and isinstance(s.get("model"), str)]


async def evaluate_all(evaluators: Sequence[Evaluator], context: EvalContext) -> list[Score]:
    """Every evaluator's score; an evaluator that raises scores 0 with its error as the reason."""
    scores: list[Score] = []
    for evaluator in evaluators:
        try:
            scores.append(await evaluator.evaluate(context))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            scores.append(Score(evaluator.name, 0.0, f"the evaluator failed: {type(exc).__name__}: {exc}"))
    return scores
