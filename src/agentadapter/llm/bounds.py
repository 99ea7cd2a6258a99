"""The most a call can cost before it is sent: what a spend guard holds for it.

:func:`call_bound` prices a request's worst case at catalog prices (:mod:`agentadapter.llm.catalog`):

- **input**: text, tool definitions and output schemas as :func:`~agentadapter.llm.tokens.count_tokens_local`
  counts them (the model's tokenizer when it is cached, else the four-characters-a-token estimate);
  images and documents at what the provider bills for them, by its published rules
  (:mod:`agentadapter.llm.media_tokens`) applied to the largest input it accepts (page contents are
  not inspected, so this is a ceiling): :data:`IMAGE_TOKENS` per image (more when the image's
  header shows it costs more), :data:`PDF_PAGE_TOKENS` per PDF page (pages counted from the file),
  UTF-8 documents as text. A document that cannot be measured (given by URL, a compressed
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

from dataclasses import dataclass

from agentadapter.llm import catalog
from agentadapter.llm.estimate import CallEstimate
from agentadapter.llm.media_tokens import (
    DEFAULT_IMAGE_TOKENS,
    DOCUMENT_TEXT_TOKENS_PER_PAGE,
    IMAGE_TOKENS,
    PDF_PAGE_TOKENS,
    image_tokens,
    pdf_page_tokens,
    split_media,
)
from agentadapter.llm.messages import Request, Usage
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


def call_bound(
    request: Request,
    model_id: str,
    *,
    default_max_output_tokens: int | None = None,
    capabilities: catalog.Capabilities | None = None,
    estimate: CallEstimate | None = None,
) -> CallBound:
    """The worst case ``request`` can cost on ``model_id`` (``provider/model``), before it is sent.

    ``default_max_output_tokens`` is the output bound to assume when the request sets no
    ``max_tokens``; the caller must then send it as ``max_tokens`` for the bound to hold.
    ``capabilities`` default to the process-wide catalog's (a facade passes its own view's);
    ``estimate`` is the call's token count, made once for all of its targets (else counted here).
    """
    if capabilities is None:
        capabilities = catalog.lookup(model_id)
    if estimate is None:
        media = split_media(request, model_id, ceiling=True)
        text_tokens = count_tokens_local(media.text_only, model_id).tokens
        media_tokens, unmeasured = media.tokens, media.unmeasured
    else:
        text_tokens = estimate.text_tokens
        media_tokens, unmeasured = estimate.media(model_id, ceiling=True)
    input_tokens = text_tokens + media_tokens
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
