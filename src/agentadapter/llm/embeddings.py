"""The neutral embedding model: what a backend is asked for one batch, what it answers, and what the
facade returns for a whole call.

A backend embeds one batch (:meth:`~agentadapter.llm.backends.base.Backend.embed`) within the limits it
declares (:meth:`~agentadapter.llm.backends.base.Backend.embedding_limits`); the router splits a call's
inputs into such batches for each target it tries (:func:`plan_batches`: in order, never more texts or
tokens than a request may carry), and the facade sums what they cost into one :class:`EmbeddingResponse`.
A route fails over whole calls, never single batches: vectors of two models do not share a space.
Here too: what a call's inputs must be (:func:`checked_inputs`) and the decoding of the compact base64
form providers send vectors in (:func:`decode_base64_vector`).
"""

from __future__ import annotations

import base64
import binascii
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from agentadapter.llm.errors import InvalidRequestError
from agentadapter.llm.messages import Attempt, Usage

__all__ = [
    "INPUT_TYPES",
    "EmbeddingBatch",
    "EmbeddingLimits",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "InputType",
    "checked_inputs",
    "decode_base64_vector",
    "encode_base64_vector",
    "plan_batches",
]

InputType = Literal["query", "document", "classification", "clustering"]
"""What the texts are for; providers that distinguish them (Cohere, Gemini) embed each kind differently."""

INPUT_TYPES: tuple[str, ...] = get_args(InputType)


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
    deadline: float | None = None
    """The call's absolute ``time.monotonic()`` deadline, shared by its batches, retries and failover."""

    def time_left(self) -> float | None:
        """Seconds until the deadline (never negative), or None when there is no deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


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


# ------------------------------------------------------------------------------------------ helpers


def checked_inputs(inputs: Any) -> list[str]:
    """A call's texts as a list, or :class:`InvalidRequestError` saying what is wrong with them."""
    if isinstance(inputs, str):
        inputs = [inputs]
    elif isinstance(inputs, bytes | bytearray) or not isinstance(inputs, Sequence):
        raise InvalidRequestError(
            f"embed() takes a string or a list of strings, not {type(inputs).__name__}")
    texts = list(inputs)
    if not texts:
        raise InvalidRequestError("embed() needs at least one text; the list of inputs is empty")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidRequestError(
                f"input {index} is a {type(text).__name__}, not a string; embed() takes text only "
                "(token arrays are not accepted: pass the text they encode)")
        if not text.strip():
            raise InvalidRequestError(
                f"input {index} is empty; an empty text has no meaning to embed (drop it, or embed a placeholder)")
    return texts


def plan_batches(tokens: Sequence[int], limits: EmbeddingLimits) -> list[tuple[int, int]]:
    """``[start, end)`` slices of the inputs, in order, each within ``limits`` (texts and tokens per request).

    Every text must already fit ``limits.max_input_tokens`` (and so one request on its own).
    """
    batches: list[tuple[int, int]] = []
    start, batch_tokens = 0, 0
    for index, count in enumerate(tokens):
        full = index - start >= limits.max_inputs or batch_tokens + count > limits.max_batch_tokens
        if full and index > start:
            batches.append((start, index))
            start, batch_tokens = index, 0
        batch_tokens += count
    if start < len(tokens):
        batches.append((start, len(tokens)))
    return batches


def decode_base64_vector(encoded: str) -> list[float]:
    """A vector sent as base64 of little-endian float32 values (OpenAI's ``encoding_format: base64``)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from exc
    if len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes is not a whole number of float32 values")
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


def encode_base64_vector(vector: Sequence[float]) -> str:
    """The inverse of :func:`decode_base64_vector` (the gateway answers ``encoding_format: base64`` so)."""
    values = array("f", vector)
    if sys.byteorder != "little":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")
