"""The condition language: the contains operator, names, functions, and what it refuses."""

from __future__ import annotations

import pytest

from agentadapter.orchestrator import Condition, ConditionError
from agentadapter.orchestrator.conditions import accepted, contains


@pytest.mark.parametrize(
    ("expression", "names", "expected"),
    [
        ("output contains 'invoice'", {"output": "Your INVOICE is attached"}, True),
        ("output contains 'invoice'", {"output": "a receipt"}, False),
        ("output not contains 'invoice'", {"output": "a receipt"}, True),
        ("not output contains 'invoice' and step < 3", {"output": "x", "step": 2}, True),
        ("contains(output, 'a') or len(text) > 100", {"output": "b", "text": "short"}, False),
        ("(output) contains 'A'", {"output": "a"}, True),
        ("outputs['writer'] contains 'draft'", {"outputs": {"writer": "Draft v2"}}, True),
        ("output contains 'status'", {"output": {"status": "ok"}}, True),
        ("output['status'] == 'ok'", {"output": {"status": "ok"}}, True),
        ("output contains 'Billing'", {"output": ["billing", "support"]}, True),
        ("agent in ['a', 'b'] and iteration >= 2", {"agent": "b", "iteration": 2}, True),
        ("lower(output) == 'yes'", {"output": "YES"}, True),
        ("startswith(output, 'approved') and not endswith(output, '?')", {"output": "Approved."}, True),
        ("len(words(text)) == 3", {"text": "one two three"}, True),
        ("input contains 'contains'", {"input": "it contains contains"}, True),
        ("accepted(output)", {"output": "LGTM, ship it"}, True),
        ("step % 2 == 0", {"step": 4}, True),
        ("output == None", {}, True),
    ],
)
def test_expressions(expression, names, expected):
    assert Condition(expression).evaluate(names) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("output.upper() == 'X'", "attribute access"),
        ("output.__class__", "attribute access"),
        ("__import__('os')", "uses the name '__import__'"),
        ("open('/etc/passwd')", "uses the name 'open'"),
        ("x > 1", "the names are output"),
        ("output is None", "uses 'is'"),
        ("f'{output}'", "f-string"),
        ("[c for c in output]", "comprehension"),
        ("lambda: 1", "Lambda"),
        ("output contains", "not a valid expression"),
        ("", "non-empty"),
        ("(a := 1)", "NamedExpr"),
    ],
)
def test_refused_expressions(expression, message):
    with pytest.raises(ConditionError, match=message):
        Condition(expression)


def test_evaluation_errors_name_the_expression():
    with pytest.raises(ConditionError, match=r"'%099999999d' % 1.*string formatting"):
        Condition("'%099999999d' % 1").evaluate({})
    with pytest.raises(ConditionError, match=r"condition 'len\(output\) > 1' failed: TypeError"):
        Condition("len(output) > 1").evaluate({"output": None})


def test_contains_and_accepted():
    assert contains(None, "x") is False
    assert contains(42, "4") is True
    assert contains([1, 2], 2) and not contains({"a": 1}, "b")
    assert accepted(True) and not accepted(False)
    assert accepted({"approved": True}) and not accepted({"accepted": False}) and not accepted({"other": 1})
    assert accepted("**Approved**: nice") and accepted("ok.") and not accepted("Not approved") and not accepted("")
    assert str(Condition("output contains 'x'")) == "output contains 'x'"
