"""A priced offline model for tests of money: ``priced/model`` costs exactly what it was estimated to.

Input is free and output costs $125 per million tokens; every answer reports ``max_tokens`` output
tokens, so a call's actual cost equals its estimate (``max_tokens * 125e-6``: $0.125 for 1000), in
binary-exact amounts. Tests of budgets and credits then count calls exactly.
"""

from __future__ import annotations

from agentadapter.llm import catalog
from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.messages import Request, Response, TextPart, Usage

__all__ = ["PRICED_MODEL", "PRICE_PER_TOKEN", "priced_backend"]

PRICED_MODEL = "priced/model"
PRICE_PER_TOKEN = 125 / 1_000_000


def _answer(request: Request) -> Response:
    return Response(
        id="priced", provider="priced", model=request.model, parts=[TextPart("paid answer")], finish_reason="stop",
        usage=Usage(input_tokens=10, output_tokens=request.max_tokens or 1000),
    )


def priced_backend() -> FunctionBackend:
    """The backend to pass as ``backends={"priced": priced_backend()}`` (registers the model's price)."""
    catalog.override(PRICED_MODEL, pricing={"input": 0.0, "output": 125.0}, max_output_tokens=4000)
    return FunctionBackend(_answer, name="priced")
