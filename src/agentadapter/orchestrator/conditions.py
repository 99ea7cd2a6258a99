"""Conditions: the small, safe expression language of route ``when:`` and loop ``until:``.

``output contains 'invoice' and step < 5`` is parsed by Python's own parser and evaluated by
`simpleeval <https://github.com/danthedeckie/simpleeval>`_ over a fixed set of names, operators and
functions - never ``eval``. The grammar (docs/workflows.md has the full table):

- literals: strings, numbers, ``True``, ``False``, ``None``, lists, tuples, dicts;
- names: ``output`` (the last agent's output: text, or a dict for a typed output), ``text`` (that
  output as text), ``input`` (the run's task), ``agent`` (who produced the output), ``step``,
  ``iteration`` (loops), ``outputs`` (the last output of every agent so far, by name);
- operators: ``contains`` (word operator), ``== != < <= > >=``, ``in``, ``not in``, ``and``,
  ``or``, ``not``, ``+ - * / // %``, ``x if c else y``, subscripts ``outputs['writer']``;
- functions: ``contains(a, b)``, ``len``, ``lower``, ``upper``, ``strip``, ``startswith``,
  ``endswith``, ``words``, ``int``, ``float``, ``str``, ``bool``, ``min``, ``max``, ``abs``,
  ``accepted(x)``.

``a contains b`` is true when text ``a`` contains text ``b`` ignoring case, when list ``a`` has an
element equal to ``b`` (strings compared ignoring case), or when dict ``a`` has key ``b``. It is a
comparison operator: the expression is tokenized and ``contains`` in operator position becomes
``is``, which the evaluator maps to the function (``is`` itself is not part of the language).
Attribute access (``x.y``), f-strings, comprehensions, lambdas and assignments are refused.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import operator
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import simpleeval

from agentadapter.orchestrator.errors import ConditionError

__all__ = ["CONDITION_FUNCTIONS", "CONDITION_NAMES", "Condition", "accepted", "contains", "to_text"]

CONDITION_NAMES = ("output", "text", "input", "agent", "step", "iteration", "outputs")
"""The names a condition may read (each is set for every evaluation, None when it does not apply)."""

_ACCEPT_WORDS = frozenset({"accept", "accepted", "approve", "approved", "pass", "passed", "lgtm", "yes", "ok"})


def to_text(value: Any) -> str:
    """An output as text: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def contains(container: Any, item: Any) -> bool:
    """``container contains item``: text ignoring case, list membership, or dict key."""
    if container is None:
        return False
    if isinstance(container, Mapping):
        return item in container
    if isinstance(container, list | tuple | set | frozenset):
        if isinstance(item, str):
            wanted = item.casefold()
            return any(isinstance(v, str) and v.casefold() == wanted for v in container)
        return item in container
    return to_text(item).casefold() in to_text(container).casefold()


def accepted(value: Any) -> bool:
    """Whether an evaluator's answer accepts: a dict with a true ``accepted`` / ``approved`` / ``pass``
    field, ``True``, or text whose first word is accept(ed), approve(d), pass(ed), LGTM, yes or OK."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        for key in ("accepted", "accept", "approved", "pass", "passed", "ok"):
            if key in value:
                return bool(value[key])
        return False
    words = to_text(value).strip().split(None, 1)
    if not words:
        return False
    return words[0].strip(".,:;!*#\"'`").casefold() in _ACCEPT_WORDS


def _safe_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str | bytes):
        # '%0999999999d' % 1 would allocate a gigabyte: string formatting is not part of the language.
        raise simpleeval.FeatureNotAvailable("% is for numbers only; string formatting is not available")
    return operator.mod(left, right)


def _words(value: Any) -> list[str]:
    return to_text(value).split()


def _string_function(name: str, method: Callable[[str], Any]) -> Callable[[Any], Any]:
    def function(value: Any) -> Any:
        return method(to_text(value))

    function.__name__ = name
    return function


CONDITION_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "contains": contains,
    "accepted": accepted,
    "len": len,
    "lower": _string_function("lower", str.lower),
    "upper": _string_function("upper", str.upper),
    "strip": _string_function("strip", str.strip),
    "startswith": lambda value, prefix: to_text(value).casefold().startswith(to_text(prefix).casefold()),
    "endswith": lambda value, suffix: to_text(value).casefold().endswith(to_text(suffix).casefold()),
    "words": _words,
    "int": int,
    "float": float,
    "str": to_text,
    "bool": bool,
    "min": min,
    "max": max,
    "abs": abs,
}

_OPERATORS: dict[type, Callable[..., Any]] = {
    **simpleeval.DEFAULT_OPERATORS,
    ast.Mod: _safe_mod,
    ast.Is: contains,
    ast.IsNot: lambda left, right: not contains(left, right),
}
_REFUSED_NODES = (
    ast.Attribute, ast.JoinedStr, ast.FormattedValue, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
    ast.Lambda, ast.NamedExpr, ast.Starred, ast.Await, ast.Yield,
)
_OPERAND_END = frozenset({tokenize.NAME, tokenize.NUMBER, tokenize.STRING})
_CLOSERS = frozenset({")", "]", "}"})
_NON_OPERAND_KEYWORDS = frozenset(keyword.kwlist) - {"True", "False", "None"}


def _rewrite(expression: str) -> str:
    """``a contains b`` -> ``a is b`` and ``a not contains b`` -> ``a is not b``; refuse a written ``is``."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expression).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise ConditionError(f"condition {expression!r} is not a valid expression: {exc}",
                             expression=expression) from exc
    out: list[tuple[int, str]] = []
    previous: tokenize.TokenInfo | None = None
    for token in tokens:
        kind, text = token.type, token.string
        if kind == tokenize.NAME and text == "is":
            raise ConditionError(
                f"condition {expression!r} uses 'is', which the condition language does not have; "
                "compare with == or !=", expression=expression,
            )
        if kind == tokenize.NAME and text == "contains" and _ends_operand(previous):
            out.append((tokenize.NAME, "is"))
        elif (kind == tokenize.NAME and text == "contains" and previous is not None and previous.string == "not"
              and len(out) >= 2 and _ends_operand_text(out[-2])):
            out[-1] = (tokenize.NAME, "is")
            out.append((tokenize.NAME, "not"))
        else:
            out.append((kind, text))
        if kind not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            previous = token
    return tokenize.untokenize(out).strip()


def _ends_operand(token: tokenize.TokenInfo | None) -> bool:
    return token is not None and _ends_operand_text((token.type, token.string))


def _ends_operand_text(token: tuple[int, str]) -> bool:
    kind, text = token
    if kind == tokenize.NAME:
        return text not in _NON_OPERAND_KEYWORDS
    return kind in _OPERAND_END or (kind == tokenize.OP and text in _CLOSERS)


class _Evaluator(simpleeval.EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with our operators and functions, and the riskier node types removed."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        super().__init__(operators=_OPERATORS, functions=CONDITION_FUNCTIONS,
                         names={"True": True, "False": False, "None": None, **names})
        for node_type in _REFUSED_NODES:
            self.nodes.pop(node_type, None)


@dataclass(slots=True)
class Condition:
    """A compiled condition. ``Condition("output contains 'invoice'")`` checks the syntax at once."""

    source: str
    _tree: ast.AST = field(init=False, repr=False)

    def __post_init__(self) -> None:
        source = self.source.strip() if isinstance(self.source, str) else ""
        if not source:
            raise ConditionError("a condition must be a non-empty expression, e.g. \"output contains 'yes'\"")
        rewritten = _rewrite(source)
        try:
            tree = ast.parse(rewritten, mode="eval").body
        except SyntaxError as exc:
            raise ConditionError(
                f"condition {source!r} is not a valid expression ({exc.msg}); see the grammar in docs/workflows.md",
                expression=source,
            ) from exc
        for node in ast.walk(tree):
            if isinstance(node, _REFUSED_NODES):
                raise ConditionError(
                    f"condition {source!r} uses {_describe(node)}, which the condition language does not allow; "
                    "use the functions (lower(output), len(text), ...) instead", expression=source,
                )
            if isinstance(node, ast.Name) and node.id not in CONDITION_NAMES and node.id not in CONDITION_FUNCTIONS \
                    and node.id not in ("True", "False", "None"):
                raise ConditionError(
                    f"condition {source!r} uses the name {node.id!r}; the names are {', '.join(CONDITION_NAMES)} "
                    "(quote text: 'invoice')", expression=source,
                )
        self._tree = tree

    def evaluate(self, names: Mapping[str, Any]) -> bool:
        """True or False for these names (any name not given is None)."""
        values = {name: names.get(name) for name in CONDITION_NAMES}
        try:
            return bool(_Evaluator(values).eval(self.source, previously_parsed=self._tree))
        except ConditionError:
            raise
        except Exception as exc:
            raise ConditionError(
                f"condition {self.source!r} failed: {type(exc).__name__}: {exc}", expression=self.source
            ) from exc

    def __str__(self) -> str:
        return self.source


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"attribute access (.{node.attr})"
    if isinstance(node, ast.JoinedStr | ast.FormattedValue):
        return "an f-string"
    if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        return "a comprehension"
    return f"a {type(node).__name__}"
