"""Shared fixtures of the adapter's tests: ``fresh_encodings`` starts a token-counting test with no
tokenizer loaded, so a test that needs one shows how it gets it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentadapter.llm import tokens


@pytest.fixture
def fresh_encodings() -> Iterator[None]:
    tokens._encodings.clear()
    tokens._sources.clear()
    yield
    tokens._encodings.clear()
    tokens._sources.clear()
