"""Every catalog test starts with no tokenizer loaded, so a test that needs one shows how it gets it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentadapter.llm import tokens


@pytest.fixture(autouse=True)
def _fresh_encodings() -> Iterator[None]:
    tokens._encodings.clear()
    tokens._sources.clear()
    yield
    tokens._encodings.clear()
    tokens._sources.clear()
