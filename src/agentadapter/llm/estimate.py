"""One call's token estimate: counted once, then read by every step that needs it.

A call's input tokens used to be counted by each step on its own (the spend guards' bound, the cost
strategy, the capability check, the context-window check, the rate limiter), four to six times with
two estimators. A :class:`CallEstimate` is made once per call by the facade (or by a router called
directly), travels with the call through the router and its nested routers, and counts the request
with :func:`agentadapter.llm.tokens.count_tokens_local` at most once: on first use, so a call no step
needs a count for (an unknown model, no budgets, no limits) counts nothing.

The text is counted with the tokenizer of the route's first OpenAI model when there is one (the
exact count beats the four-characters-a-token estimate for every target), else estimated.
Images and documents are priced per target, since each provider bills them by its own rules
(:mod:`agentadapter.llm.media_tokens`); that reads image headers, not the text, and is memoized
per target.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentadapter.llm import tokens
from agentadapter.llm.media_tokens import pdf_page_tokens, split_media
from agentadapter.llm.messages import FilePart, ImagePart, Request

__all__ = ["CallEstimate"]


class CallEstimate:
    """The input tokens of one request, counted once (lazily), and per target what its media add."""

    __slots__ = ("_count", "_has_media", "_media", "model_id", "request")

    def __init__(self, request: Request, model_ids: Sequence[str]) -> None:
        self.request = request
        self.model_id = _counting_model(model_ids)
        """The ``provider/model`` whose tokenizer counts the text (the first in the route, or its first
        OpenAI model when it has one)."""
        self._count: tokens.TokenCount | None = None
        self._has_media: bool | None = None
        self._media: dict[tuple[str, bool], tuple[int, int]] = {}

    @property
    def count(self) -> tokens.TokenCount:
        """The request's input tokens for :attr:`model_id`; the one count this call makes."""
        if self._count is None:
            self._count = tokens.count_tokens_local(self.request, self.model_id)
        return self._count

    @property
    def text_tokens(self) -> int:
        """Text, tool definitions and output schemas (images and documents not included)."""
        count = self.count
        return count.tokens - count.media_tokens

    def media(self, model_id: str, *, ceiling: bool) -> tuple[int, int]:
        """(tokens the measurable images and documents cost on ``model_id``, documents not measurable)."""
        if not self.has_media:
            return 0, 0
        key = (model_id, ceiling)
        found = self._media.get(key)
        if found is None:
            cost = split_media(self.request, model_id, ceiling=ceiling)
            found = self._media[key] = (cost.tokens, cost.unmeasured)
        return found

    @property
    def has_media(self) -> bool:
        if self._has_media is None:
            self._has_media = any(
                isinstance(part, ImagePart | FilePart) for message in self.request.messages for part in message.parts
            )
        return self._has_media

    def for_model(self, model_id: str) -> tokens.TokenCount:
        """The input tokens on ``model_id``, as :func:`~agentadapter.llm.tokens.count_tokens_local` would
        count them (exact only for the model whose tokenizer counted)."""
        count = self.count
        if model_id == self.model_id:
            return count
        measured, unmeasured = self.media(model_id, ceiling=False)
        media_tokens = measured + unmeasured * pdf_page_tokens(model_id)
        exact = count.exact and tokens.openai_encoding_name(model_id) == tokens.openai_encoding_name(self.model_id)
        return tokens.TokenCount(self.text_tokens + media_tokens, exact=exact, method=count.method,
                                 media_tokens=media_tokens)

    def input_tokens(self, model_id: str) -> int:
        return self.for_model(model_id).tokens


def _counting_model(model_ids: Sequence[str]) -> str:
    for model_id in model_ids:
        if tokens.openai_encoding_name(model_id) is not None:
            return model_id
    return model_ids[0] if model_ids else ""
