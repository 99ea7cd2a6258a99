"""The neutral embedding model: what a backend is asked for one batch, what it answers, and what the
facade returns for a whole call.

A backend embeds one batch (:meth:`~agentadapter.llm.backends.base.Backend.embed`) within the limits it
declares (:meth:`~agentadapter.llm.backends.base.Backend.embedding_limits`); the facade splits a call's
inputs into such batches, keeps their order, and sums what they cost into one
:class:`EmbeddingResponse`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agentadapter.llm.messages import Attempt, Usage

__all__ = ["EmbeddingBatch", "EmbeddingLimits", "EmbeddingRequest", "EmbeddingResponse", "InputType"]

InputType = Literal["query", "document", "classification", "clustering"]
"""What the texts are for; providers that distinguish them (Cohere, Gemini) embed each kind differently."""


@dataclass(slots=True)
class EmbeddingRequest:
    """One batch of texts for one backend (the model name is the backend's own, without the provider)."""

    model: str
    inputs: list[str]
    dimensions: int | None = None
    """Fewer dimensions than the model's own, where the model supports shortening."""
    input_type: InputType | None = None
    timeout: float | None = None
    """Seconds this batch may take (the call's remaining time when it has a deadline)."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EmbeddingBatch:
    """A backend's answer for one batch: a vector per input, in input order."""

    vectors: list[list[float]]
    input_tokens: int
    """The tokens the provider counted (billed) for the batch; an estimate where it reports none."""
    model: str
    provider_details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class EmbeddingLimits:
    """What one request to a backend may carry."""

    max_inputs: int = 2048
    """Texts per request."""
    max_input_tokens: int = 8191
    """Tokens of one text."""
    max_batch_tokens: int = 300_000
    """Tokens of all texts of one request."""


@dataclass(slots=True)
class EmbeddingResponse:
    """A whole ``LLM.embed`` call: every input's vector, in input order, and what the call cost."""

    model: str
    provider: str
    vectors: list[list[float]]
    usage: Usage
    cost_usd: float | None
    """USD at catalog prices; None when the model has no known price."""
    latency_ms: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    cached: bool = False

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "provider": self.provider, "dimensions": self.dimensions,
                "vectors": self.vectors, "usage": self.usage.to_dict(), "cost_usd": self.cost_usd,
                "latency_ms": self.latency_ms, "attempts": [a.to_dict() for a in self.attempts], "cached": self.cached}
