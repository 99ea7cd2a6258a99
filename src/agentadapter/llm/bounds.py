"""The most a call can cost before it is sent: what a spend guard holds for it.

:func:`call_bound` prices a request's worst case at catalog prices (:mod:`agentadapter.llm.catalog`):

- **input**: text, tool definitions and output schemas as :func:`~agentadapter.llm.tokens.count_tokens_local`
  counts them (the model's tokenizer when it is cached, else the four-characters-a-token estimate);
  images and documents at what the provider bills for them, by its published rules applied to the
  largest input it accepts (dimensions and page contents are not inspected, so this is a ceiling):
  :data:`IMAGE_TOKENS` per image, :data:`PDF_PAGE_TOKENS` per PDF page (pages counted from the
  file), UTF-8 documents as text. A document that cannot be measured (given by URL, a compressed
  PDF, binary data) may fill the context window, so the input bound becomes the whole window. The
  input of a model the catalog knows never exceeds its context window. Every input token is
  priced at the dearer of the input and cache-write prices, at the tier its count selects.
- **output**: ``max_tokens`` (capped at the model's maximum output when the catalog knows the
  model); without one, the caller's default (which the facade then sends as ``max_tokens``, so the
  provider cannot exceed it) or, when the caller names none, the model's maximum output capped at
  :data:`~agentadapter.llm.tokens.UNSET_MAX_TOKENS_CAP` - an estimate, not a bound.

Its neighbours: the facade (:mod:`agentadapter.llm.client`) asks for one bound per route and hands it
to the spend guards (:mod:`agentadapter.llm.policy.budget`); the service's credit guard
(``agentadapter.store.credits``) holds it against the tenant's balance.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from agentadapter.llm import catalog
from agentadapter.llm.messages import FilePart, ImagePart, Message, Part, Request, TextPart, Usage
from agentadapter.llm.tokens import UNSET_MAX_TOKENS_CAP, count_tokens_local

__all__ = [
    "DEFAULT_IMAGE_TOKENS",
    "DOCUMENT_TEXT_TOKENS_PER_PAGE",
    "IMAGE_TOKENS",
    "PDF_PAGE_TOKENS",
    "CallBound",
    "call_bound",
    "image_tokens",
    "output_bound",
    "pdf_page_tokens",
]


@dataclass(slots=True, frozen=True)
class CallBound:
    """The most one call may cost, and what that bound is made of."""

    usd: float
    """The worst case in USD at catalog prices (0.0 when ``priced`` is False)."""
    model: str
    """The ``provider/model`` the bound was priced for (a route's dearest target)."""
    input_tokens: int
    output_tokens: int
    """The output bound: ``max_tokens``, or the default the facade sends in its place."""
    priced: bool
    """False when the catalog knows no price for ``model``: ``usd`` then bounds nothing."""
    output_enforced: bool
    """True when ``output_tokens`` is what the provider was (or will be) told as ``max_tokens``."""

    def describe(self) -> dict[str, object]:
        """The bound as JSON-able details (for a credit transaction or a log line)."""
        return {"model": self.model, "usd": self.usd, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "priced": self.priced}


# ----------------------------------------------------------------------------------------- media

# The most one image can cost, in input tokens, by the providers' published vision rules applied to
# the largest image each accepts (images are scaled down to it, never billed beyond it):
# - OpenAI tile models, high detail: base + tile price x 8 tiles (a 768x2048 image after scaling);
#   low detail is the base alone. gpt-4o-mini bills images at 2833 + 5667 per tile.
# - OpenAI patch models: at most 1536 32-pixel patches, times the model's multiplier.
# - Anthropic: about 1,600 tokens (width x height / 750, images scaled to ~1.15 megapixels).
# - Gemini: 258 tokens per 768x768 tile; the bound assumes a 3072x3072 image (16 tiles).
_OPENAI_TILES: tuple[tuple[str, int, int], ...] = (  # (model prefix, base tokens, tokens per tile), first match wins
    ("gpt-4o-mini", 2833, 5667),
    ("computer-use", 65, 129),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("gpt-4o", 85, 170),
    ("chatgpt-4o", 85, 170),
    ("gpt-4.5", 85, 170),
)
_OPENAI_PATCHES: tuple[tuple[str, float], ...] = (  # (model prefix, multiplier), first match wins
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
    ("gpt-5-mini", 1.62),
    ("gpt-5-nano", 2.46),
    ("o4-mini", 1.72),
)
_OPENAI_TILE_FALLBACK = (  # gpt-4.1 and gpt-5 (without -mini/-nano) bill tiles; gpt-5 at 70 + 140 a tile
    ("gpt-4.1", 85, 170),
    ("gpt-5", 70, 140),
)
_MAX_TILES = 8
_MAX_PATCHES = 1536

IMAGE_TOKENS: dict[str, int] = {"anthropic": 1600, "gemini": 16 * 258}
"""The most one image costs per vendor without per-model rules (OpenAI's depend on the model)."""

DEFAULT_IMAGE_TOKENS = 16 * 258
"""An image for a vendor with no published rule here: the largest of the rules above but gpt-4o-mini's."""

DOCUMENT_TEXT_TOKENS_PER_PAGE = 3000
"""The text of a dense PDF page (Anthropic documents 1,500-3,000 tokens a page); OpenAI and Anthropic
bill each page's text *and* its image."""

PDF_PAGE_TOKENS: dict[str, int] = {"gemini": 560}
"""A PDF page for vendors that bill a page as one unit (Gemini: 258, or 560 at high media resolution)."""

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")

# Resellers and hosts that serve a vendor's own models under the vendor's billing rules.
_VENDOR_HOSTS = {"azure": "openai"}


def _vendor_and_name(model_id: str) -> tuple[str, str]:
    provider, _, name = model_id.partition("/")
    if provider == "openrouter" and "/" in name:
        provider, _, name = name.partition("/")
    return _VENDOR_HOSTS.get(provider, provider), name.lower()


def image_tokens(model_id: str, *, detail: str | None = None) -> int:
    """The most one image may cost ``model_id`` in input tokens (see the rules above)."""
    vendor, name = _vendor_and_name(model_id)
    if vendor != "openai":
        return IMAGE_TOKENS.get(vendor, DEFAULT_IMAGE_TOKENS)
    for prefix, base, tile in _OPENAI_TILES:
        if name.startswith(prefix):
            return base if detail == "low" else base + tile * _MAX_TILES
    for prefix, multiplier in _OPENAI_PATCHES:
        if name.startswith(prefix):
            return -(-int(_MAX_PATCHES * multiplier * 100) // 100)  # ceil, without float surprises
    for prefix, base, tile in _OPENAI_TILE_FALLBACK:
        if name.startswith(prefix):
            return base if detail == "low" else base + tile * _MAX_TILES
    return max(DEFAULT_IMAGE_TOKENS, -(-int(_MAX_PATCHES * 2.46 * 100) // 100))


def pdf_page_tokens(model_id: str) -> int:
    """The most one PDF page may cost ``model_id``: the vendor's page price, or text plus an image."""
    vendor, _ = _vendor_and_name(model_id)
    return PDF_PAGE_TOKENS.get(vendor) or DOCUMENT_TEXT_TOKENS_PER_PAGE + image_tokens(model_id)


def _measure_parts(request: Request, model_id: str) -> tuple[Request, int, bool]:
    """The request with its images and documents taken out (UTF-8 documents become text), the tokens
    those cost at most, and whether one of them cannot be measured."""
    media_tokens = 0
    unmeasured = False
    messages: list[Message] = []
    changed = False
    for message in request.messages:
        parts: list[Part] = []
        has_media = False
        for part in message.parts:
            if isinstance(part, ImagePart):
                media_tokens += image_tokens(model_id, detail=part.detail)
            elif isinstance(part, FilePart):
                as_text, tokens = _document(part, model_id)
                if as_text is not None:
                    parts.append(TextPart(as_text))
                elif tokens is None:
                    unmeasured = True
                else:
                    media_tokens += tokens
            else:
                parts.append(part)
                continue
            has_media = True
        messages.append(dataclasses.replace(message, parts=parts) if has_media else message)
        changed = changed or has_media
    stripped = dataclasses.replace(request, messages=messages) if changed else request
    return stripped, media_tokens, unmeasured


def _document(part: FilePart, model_id: str) -> tuple[str | None, int | None]:
    """(the document as text, None) for UTF-8 text; (None, tokens) for a PDF whose pages can be
    counted; (None, None) when it cannot be measured."""
    if part.data is None:
        return None, None
    media_type = (part.media_type or "").lower()
    if media_type == "application/pdf" or part.data.startswith(b"%PDF"):
        pages = len(_PDF_PAGE.findall(part.data))
        # Page objects inside compressed object streams are invisible to this count: unmeasured.
        return (None, pages * pdf_page_tokens(model_id)) if pages else (None, None)
    try:
        return part.data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, None


# ------------------------------------------------------------------------------------------ bound


def output_bound(request: Request, capabilities: catalog.Capabilities, default: int | None) -> tuple[int, bool]:
    """(the most output tokens the call may bill, whether the provider is told so as ``max_tokens``)."""
    if request.max_tokens is not None:
        bound, enforced = request.max_tokens, True
    elif default is not None:
        bound, enforced = default, True
    else:
        bound, enforced = min(capabilities.max_output_tokens, UNSET_MAX_TOKENS_CAP), False
    if capabilities.known:
        bound = min(bound, capabilities.max_output_tokens)  # the model cannot write more
    return max(0, bound), enforced


def call_bound(request: Request, model_id: str, *, default_max_output_tokens: int | None = None) -> CallBound:
    """The worst case ``request`` can cost on ``model_id`` (``provider/model``), before it is sent.

    ``default_max_output_tokens`` is the output bound to assume when the request sets no
    ``max_tokens``; the caller must then send it as ``max_tokens`` for the bound to hold.
    """
    capabilities = catalog.lookup(model_id)
    text_only, media_tokens, unmeasured = _measure_parts(request, model_id)
    input_tokens = count_tokens_local(text_only, model_id).tokens + media_tokens
    if unmeasured:  # a document of unknown size may fill what the window leaves
        input_tokens = max(input_tokens, capabilities.context_window)
    if capabilities.known and capabilities.context_window > 0:
        input_tokens = min(input_tokens, capabilities.context_window)
    output_tokens, enforced = output_bound(request, capabilities, default_max_output_tokens)
    pricing = capabilities.pricing
    if pricing is None:
        return CallBound(0.0, model_id, input_tokens, output_tokens, priced=False, output_enforced=enforced)
    price_in, _, _, price_write = pricing.for_input(input_tokens)
    # Prompt-cache writes cost more than plain input at some providers: bound every input token by the dearer.
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens,
                  cache_write_tokens=input_tokens if price_write > price_in else 0)
    usd = catalog.cost_usd(usage, pricing) or 0.0
    return CallBound(usd, model_id, input_tokens, output_tokens, priced=True, output_enforced=enforced)
