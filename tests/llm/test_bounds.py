"""The worst case a call can cost (``agentadapter.llm.bounds``): images and documents at what the provider
bills for them, the output bound with and without ``max_tokens``, unpriced models, and the facade sending
the bound it held as ``max_tokens``."""

from __future__ import annotations

import sys

import pytest

from agentadapter.llm import catalog, tokens
from agentadapter.llm.backends.base import estimate_tokens
from agentadapter.llm.backends.testing import FunctionBackend
from agentadapter.llm.bounds import (
    DOCUMENT_TEXT_TOKENS_PER_PAGE,
    CallBound,
    call_bound,
    image_tokens,
    pdf_page_tokens,
)
from agentadapter.llm.messages import FilePart, ImagePart, Message, Request, TextPart
from agentadapter.llm.policy.budget import Hold
from agentadapter.llm.tokens import UNSET_MAX_TOKENS_CAP
from agentadapter.testing import offline_llm

pytestmark = pytest.mark.usefixtures("fresh_encodings")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count text with the documented estimate, whatever this machine's tiktoken cache holds."""
    for name in ("tiktoken", "tiktoken.load", "tiktoken_ext", "tiktoken_ext.openai_public"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(tokens, "_encodings", {})  # nor what an earlier test loaded


def _request(*parts: TextPart | ImagePart | FilePart, max_tokens: int | None = None) -> Request:
    return Request(model="m", messages=[Message("user", list(parts))], max_tokens=max_tokens)


def _pdf(pages: int) -> bytes:
    objects = b"".join(b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n" % (3 + i) for i in range(pages))
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages >> endobj\n" + objects


@pytest.mark.parametrize(("model_id", "detail", "tokens"), [
    ("openai/gpt-4o", None, 85 + 170 * 8),            # 8 tiles: a 768x2048 image after scaling
    ("openai/gpt-4o", "low", 85),
    ("openai/gpt-4o-mini", None, 2833 + 5667 * 8),    # gpt-4o-mini bills images at ~33x the tokens
    ("azure/gpt-4o-mini", "low", 2833),
    ("openai/gpt-4.1-mini", None, 2489),              # 1536 patches x 1.62
    ("openai/gpt-4.1-nano", None, 3779),              # 1536 patches x 2.46
    ("openai/gpt-5", None, 70 + 140 * 8),
    ("openai/o3", None, 75 + 150 * 8),
    ("anthropic/claude-sonnet-4-5", None, 1600),
    ("openrouter/anthropic/claude-sonnet-4.5", None, 1600),
    ("gemini/gemini-2.5-flash", None, 16 * 258),
    ("mistral/pixtral-large-latest", None, 16 * 258),  # no rule here: the largest of the others
])
def test_an_image_costs_what_the_provider_bills_for_the_largest_it_accepts(model_id: str, detail: str | None,
                                                                             tokens: int) -> None:
    assert image_tokens(model_id, detail=detail) == tokens


def test_images_are_held_at_their_token_cost_not_a_flat_guess() -> None:
    text = _request(TextPart("describe these"), max_tokens=100)
    with_images = _request(TextPart("describe these"), ImagePart(data=PNG, media_type="image/png"),
                           ImagePart(url="https://example.test/cat.jpg"), max_tokens=100)
    for model_id in ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"):
        plain, pictured = call_bound(text, model_id), call_bound(with_images, model_id)
        assert pictured.input_tokens == plain.input_tokens + 2 * image_tokens(model_id), model_id
        assert pictured.usd > plain.usd
    # gpt-4o-mini's images cost far more than the 765 tokens the context-window check assumes
    assert call_bound(with_images, "openai/gpt-4o-mini").input_tokens > estimate_tokens(with_images) + 90_000


def test_documents_count_pages_text_or_the_whole_window() -> None:
    model_id = "anthropic/claude-sonnet-4-5"
    window = catalog.lookup(model_id).context_window
    base = call_bound(_request(TextPart("read this"), max_tokens=10), model_id).input_tokens
    pdf = call_bound(_request(TextPart("read this"), FilePart(data=_pdf(3), media_type="application/pdf"),
                              max_tokens=10), model_id)
    assert pdf.input_tokens == base + 3 * pdf_page_tokens(model_id)
    assert pdf_page_tokens(model_id) == DOCUMENT_TEXT_TOKENS_PER_PAGE + 1600  # each page's text and its image
    assert pdf_page_tokens("gemini/gemini-2.5-pro") == 560
    # A UTF-8 document is text, counted like text.
    notes = "word " * 4000
    as_file = call_bound(_request(TextPart("read this"), FilePart(data=notes.encode(), media_type="text/plain"),
                                  max_tokens=10), model_id)
    as_text = call_bound(_request(TextPart("read this"), TextPart(notes), max_tokens=10), model_id)
    assert as_file.input_tokens == as_text.input_tokens > base + 4000
    # What cannot be measured (a URL, binary data, a PDF whose pages are compressed) may fill the window.
    for unmeasured in (FilePart(url="https://example.test/report.pdf"),
                       FilePart(data=b"\x00\x01\x02\xff" * 10, media_type="application/octet-stream"),
                       FilePart(data=b"%PDF-1.7\n<< /Type /ObjStm >> stream ...", media_type="application/pdf")):
        assert call_bound(_request(TextPart("read this"), unmeasured, max_tokens=10), model_id).input_tokens == window
    # ... and no input bound exceeds the window of a model the catalog knows.
    many = _request(*(FilePart(data=_pdf(50), media_type="application/pdf") for _ in range(5)), max_tokens=10)
    assert call_bound(many, model_id).input_tokens == window


def test_the_output_bound_with_and_without_max_tokens() -> None:
    model_id = "openai/gpt-4o-mini"  # writes at most 16,384 tokens
    caps = catalog.lookup(model_id)
    assert caps.pricing is not None and caps.max_output_tokens == 16_384
    given = call_bound(_request(TextPart("hi"), max_tokens=1000), model_id)
    assert (given.output_tokens, given.output_enforced) == (1000, True)
    too_many = call_bound(_request(TextPart("hi"), max_tokens=1_000_000), model_id)
    assert too_many.output_tokens == 16_384  # the model cannot write more than its maximum
    defaulted = call_bound(_request(TextPart("hi")), model_id, default_max_output_tokens=4096)
    assert (defaulted.output_tokens, defaulted.output_enforced) == (4096, True)
    estimated = call_bound(_request(TextPart("hi")), model_id)
    assert (estimated.output_tokens, estimated.output_enforced) == (UNSET_MAX_TOKENS_CAP, False)
    input_tokens = estimate_tokens(_request(TextPart("hi")))
    assert given.usd == pytest.approx((input_tokens * caps.pricing.input + 1000 * caps.pricing.output) / 1e6)
    assert given == CallBound(given.usd, model_id, input_tokens, 1000, priced=True, output_enforced=True)


def test_input_is_held_at_the_dearer_of_the_input_and_cache_write_prices() -> None:
    model_id = "anthropic/claude-sonnet-4-5"
    pricing = catalog.lookup(model_id).pricing
    assert pricing is not None and pricing.cache_write is not None and pricing.cache_write > pricing.input
    request = _request(TextPart("x" * 40_000), max_tokens=10)
    bound = call_bound(request, model_id)
    assert bound.usd == pytest.approx((bound.input_tokens * pricing.cache_write + 10 * pricing.output) / 1e6)


def test_an_unknown_price_is_flagged_not_bounded() -> None:
    bound = call_bound(_request(TextPart("hi"), max_tokens=10), "nowhere/mystery-model")
    assert (bound.priced, bound.usd, bound.model) == (False, 0.0, "nowhere/mystery-model")


class _Recording:
    """A guard that holds anything and remembers what it was asked."""

    def __init__(self) -> None:
        self.bounds: list[CallBound] = []

    async def reserve(self, estimate_usd: float, tags: object) -> Hold:
        raise AssertionError("a bound-aware guard is asked with the whole bound")

    async def reserve_bound(self, bound: CallBound, tags: object) -> Hold:
        self.bounds.append(bound)
        return self

    async def settle(self, actual_usd: float | None) -> None:
        return None


async def test_the_facade_sends_the_output_bound_it_holds() -> None:
    catalog.override("bounded/model", pricing={"input": 1.0, "output": 10.0}, max_output_tokens=2000)
    backend = FunctionBackend(lambda request: "ok", name="bounded")
    guard = _Recording()
    llm = offline_llm(backends={"bounded": backend}, guards=[guard], default_max_tokens=4096)
    try:
        await llm.generate("bounded/model", "hi")                  # none given: the default, capped at 2000
        await llm.generate("bounded/model", "hi", max_tokens=300)  # given: kept
        await llm.stream("bounded/model", "hi").collect()
    finally:
        await llm.aclose()
    assert [r.max_tokens for r in backend.requests] == [2000, 300, 2000]
    assert [(b.output_tokens, b.output_enforced) for b in guard.bounds] == [(2000, True), (300, True), (2000, True)]
    # Without guards or budgets nothing is held, and nothing is imposed on the request.
    free = offline_llm(backends={"bounded": backend}, default_max_tokens=4096)
    try:
        await free.generate("bounded/model", "hi")
    finally:
        await free.aclose()
    assert backend.requests[-1].max_tokens is None
