"""Deterministic vectors for the providers' embedding fakes: the same text always gets the same vector.

A vector is drawn from the SHA-256 of the model and the text and normalized to length 1, so a test can
tell which model embedded which text, and in which order, by recomputing it with :func:`fake_vector`.
Token counts follow one visible rule (:func:`fake_tokens`) so tests can predict usage and cost.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct


def fake_vector(model: str, text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{model}\0{text}\0{counter}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Rounded through float32, as providers send them, so a base64 answer decodes to the same numbers.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


def fake_tokens(text: str) -> int:
    """What the fakes bill for a text: one token per four characters, rounded up."""
    return max(1, -(-len(text) // 4))


def base64_vector(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
