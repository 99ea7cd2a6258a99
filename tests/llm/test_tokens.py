"""Local token counting (tiktoken only from its disk cache, never a download), the pre-call cost
estimate and the context-window check."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from agentadapter.llm import catalog, tokens
from agentadapter.llm.backends.base import estimate_tokens
from agentadapter.llm.catalog import Capabilities, Pricing
from agentadapter.llm.errors import ContextWindowExceededError
from agentadapter.llm.messages import ImagePart, Message, Request
from agentadapter.llm.tokens import (
    UNSET_MAX_TOKENS_CAP,
    TokenCount,
    check_context_window,
    count_tokens_local,
    estimate_cost,
    openai_encoding_name,
)
from agentadapter.llm.tools import Tool

pytestmark = pytest.mark.usefixtures("fresh_encodings")

_FAKE_MODULES = ("tiktoken", "tiktoken.load", "tiktoken_ext", "tiktoken_ext.openai_public")
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def _request(text: str, **settings: object) -> Request:
    return Request(model="gpt-4o", messages=[Message.user(text)], **settings)  # type: ignore[arg-type]


@pytest.fixture
def no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if tiktoken were not installed (whatever this machine has)."""
    for name in _FAKE_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


class FakeTiktoken:
    """A stand-in tiktoken package on disk: one token per whitespace-separated word; its loader
    raises instead of downloading, like a machine without network."""

    def __init__(self, root: Path, cache_dir: Path) -> None:
        self.root, self.cache_dir = root, cache_dir
        self.contents = {"o200k_base": b"fake o200k ranks", "cl100k_base": b"fake cl100k ranks"}

    def write(self) -> None:
        package = self.root / "tiktoken"
        package.mkdir()
        (package / "__init__.py").write_text(textwrap.dedent("""
            from tiktoken import load
            GET_ENCODING_CALLS = []

            class Encoding:
                def __init__(self, name):
                    self.name = name

                def encode_ordinary(self, text):
                    return text.split()

            def get_encoding(name):
                from tiktoken_ext import openai_public
                openai_public.ENCODING_CONSTRUCTORS[name]()
                GET_ENCODING_CALLS.append(name)
                return Encoding(name)
        """))
        (package / "load.py").write_text(textwrap.dedent("""
            import hashlib, os

            def load_tiktoken_bpe(url, expected_hash=None):
                path = os.path.join(os.environ["TIKTOKEN_CACHE_DIR"], hashlib.sha1(url.encode()).hexdigest())
                if not os.path.exists(path):
                    raise RuntimeError("tiktoken would download " + url)
                return {}
        """))
        ext = self.root / "tiktoken_ext"
        ext.mkdir()
        constructors = []
        for name, content in self.contents.items():
            digest = hashlib.sha256(content).hexdigest()
            constructors.append(
                f"def {name}():\n"
                f"    ranks = load_tiktoken_bpe({_URL.format(name=name)!r}, expected_hash={digest!r})\n"
                f"    return {{'name': {name!r}, 'mergeable_ranks': ranks}}\n"
            )
        (ext / "openai_public.py").write_text(
            "from tiktoken.load import load_tiktoken_bpe\n\n" + "\n".join(constructors)
            + "\nENCODING_CONSTRUCTORS = {" + ", ".join(f"{n!r}: {n}" for n in self.contents) + "}\n"
        )

    def cache(self, name: str, content: bytes | None = None) -> None:
        self.cache_dir.mkdir(exist_ok=True)
        key = hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
        (self.cache_dir / key).write_bytes(self.contents[name] if content is None else content)

    @property
    def calls(self) -> list[str]:
        module: ModuleType = sys.modules["tiktoken"]
        return module.GET_ENCODING_CALLS  # type: ignore[no-any-return]


@pytest.fixture
def fake_tiktoken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTiktoken]:
    fake = FakeTiktoken(tmp_path / "site", tmp_path / "tiktoken-cache")
    fake.root.mkdir()
    fake.write()
    for name in _FAKE_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(fake.root))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(fake.cache_dir))
    monkeypatch.setattr(tokens, "packaged_encoding_file", lambda name: None)  # these tests are about the cache
    import tiktoken  # noqa: F401  (the fake, imported now so `calls` can read it)

    yield fake
    for name in _FAKE_MODULES:
        sys.modules.pop(name, None)


# ---------------------------------------------------------------------------------------- counting


def test_without_tiktoken_openai_models_are_estimated(no_tiktoken: None) -> None:
    request = _request("hello there, how are you today?")
    counted = count_tokens_local(request, "openai/gpt-4o")
    assert counted == TokenCount(estimate_tokens(request), exact=False, method="estimate:chars/4")


def test_a_cached_encoding_counts_exactly(fake_tiktoken: FakeTiktoken) -> None:
    fake_tiktoken.cache("o200k_base")
    counted = count_tokens_local(_request("hello big world"), "openai/gpt-4o")
    # reply priming 3 + per message 3 + role "user" 1 + three words
    assert counted == TokenCount(10, exact=True, method="tiktoken:o200k_base")
    assert fake_tiktoken.calls == ["o200k_base"]
    count_tokens_local(_request("again"), "openai/gpt-4o")
    assert fake_tiktoken.calls == ["o200k_base"]  # loaded once


def test_a_missing_encoding_file_is_never_downloaded(fake_tiktoken: FakeTiktoken) -> None:
    counted = count_tokens_local(_request("hello big world"), "openai/gpt-4o")
    assert counted.exact is False and counted.method == "estimate:chars/4"
    assert fake_tiktoken.calls == []  # tiktoken was not asked: it would have downloaded


def test_a_corrupt_cache_file_is_not_used(fake_tiktoken: FakeTiktoken) -> None:
    # tiktoken re-downloads a file that fails its sha256 check, so it counts as "not cached".
    fake_tiktoken.cache("o200k_base", b"truncated")
    assert count_tokens_local(_request("hello"), "openai/gpt-4o").exact is False
    assert fake_tiktoken.calls == []


def test_an_empty_cache_dir_disables_tiktoken(fake_tiktoken: FakeTiktoken, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tiktoken.cache("o200k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert count_tokens_local(_request("hello"), "openai/gpt-4o").exact is False
    assert fake_tiktoken.calls == []


def test_data_gym_cache_dir_is_honoured(fake_tiktoken: FakeTiktoken, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tiktoken.cache("cl100k_base")
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(fake_tiktoken.cache_dir))
    assert tokens._encoding_file_cached("cl100k_base") is True
    assert tokens._encoding_file_cached("o200k_base") is False


def test_other_providers_are_always_estimated(fake_tiktoken: FakeTiktoken) -> None:
    fake_tiktoken.cache("o200k_base")
    assert count_tokens_local(_request("hello"), "anthropic/claude-sonnet-4-5").exact is False
    assert count_tokens_local(_request("hello"), "groq/openai/gpt-oss-120b").exact is False
    assert fake_tiktoken.calls == []


def test_images_tools_and_schemas_make_a_count_inexact(fake_tiktoken: FakeTiktoken) -> None:
    fake_tiktoken.cache("o200k_base")
    image = Request(model="gpt-4o", messages=[Message.user([ImagePart(url="https://x/y.png")])])
    counted = count_tokens_local(image, "openai/gpt-4o")
    # An image by URL has no size to read: it costs the most a gpt-4o image can (85 + 8 tiles of 170).
    assert counted.method == "tiktoken:o200k_base" and counted.exact is False
    assert counted.media_tokens == 85 + 8 * 170 and counted.tokens == 7 + counted.media_tokens
    tool = Tool(name="lookup", description="find a thing", parameters={"type": "object", "properties": {}})
    assert count_tokens_local(_request("hi", tools=[tool]), "openai/gpt-4o").exact is False


@pytest.mark.parametrize(
    ("model_id", "encoding"),
    [
        ("openai/gpt-4o", "o200k_base"),
        ("openai/gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4.1-nano", "o200k_base"),
        ("openai/o3-mini", "o200k_base"),
        ("openai/gpt-5", "o200k_base"),
        ("azure/gpt-4o", "o200k_base"),
        ("openrouter/openai/gpt-5-mini", "o200k_base"),
        ("gpt-4o", "o200k_base"),
        ("openai/gpt-4-turbo", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("anthropic/claude-sonnet-4-5", None),
        ("groq/openai/gpt-oss-120b", None),
        ("openai/davinci-002", None),
    ],
)
def test_encoding_names(model_id: str, encoding: str | None) -> None:
    assert openai_encoding_name(model_id) == encoding


# ------------------------------------------------------------------------------------ cost estimate


def test_estimate_cost_uses_max_tokens_as_the_output_bound(no_tiktoken: None) -> None:
    request = _request("x" * 4000, max_tokens=1000)
    input_tokens = estimate_tokens(request)
    expected = (input_tokens * 0.15 + 1000 * 0.6) / 1_000_000
    assert estimate_cost(request, "openai/gpt-4o-mini") == pytest.approx(expected)


def test_estimate_cost_caps_the_bound_when_max_tokens_is_unset(no_tiktoken: None) -> None:
    request = _request("hello")
    input_tokens = estimate_tokens(request)
    # gpt-4o-mini may write 16384 tokens; the estimate assumes at most UNSET_MAX_TOKENS_CAP
    expected = (input_tokens * 0.15 + UNSET_MAX_TOKENS_CAP * 0.6) / 1_000_000
    assert estimate_cost(request, "openai/gpt-4o-mini") == pytest.approx(expected)
    # a model with a smaller maximum output is bounded by it
    haiku = (input_tokens * 0.8 + 8192 * 4.0) / 1_000_000
    assert estimate_cost(request, "anthropic/claude-3-5-haiku") == pytest.approx(haiku)


def test_estimate_cost_applies_the_long_prompt_tier(no_tiktoken: None) -> None:
    request = _request("word " * 250_000, max_tokens=100)  # ~312K estimated tokens
    input_tokens = estimate_tokens(request)
    assert input_tokens > 200_000
    expected = (input_tokens * 2.5 + 100 * 15.0) / 1_000_000
    assert estimate_cost(request, "gemini/gemini-2.5-pro") == pytest.approx(expected)


def test_estimate_cost_with_explicit_pricing_and_unknown_models(no_tiktoken: None) -> None:
    request = _request("hello", max_tokens=10)
    assert estimate_cost(request, "nowhere/mystery-model") is None  # unknown, not free
    priced = estimate_cost(request, "nowhere/mystery-model", Pricing(1.0, 2.0))
    assert priced == pytest.approx((estimate_tokens(request) * 1.0 + 10 * 2.0) / 1_000_000)


# ------------------------------------------------------------------------------------ context window


def _prompt_of(token_estimate: int) -> Request:
    # estimate_tokens: (16 framing chars + text) // 4 + 3
    request = _request("x" * ((token_estimate - 3) * 4 - 16))
    assert estimate_tokens(request) == token_estimate
    return request


def test_an_estimate_within_the_margin_is_sent(no_tiktoken: None) -> None:
    window = Capabilities(context_window=1000, known=True)
    assert check_context_window(_prompt_of(1000), window).tokens == 1000
    assert check_context_window(_prompt_of(1100), window).tokens == 1100  # might still fit: let it go


def test_a_clearly_oversized_prompt_is_refused_before_sending(no_tiktoken: None) -> None:
    window = Capabilities(context_window=1000, known=True)
    with pytest.raises(ContextWindowExceededError) as raised:
        check_context_window(_prompt_of(1101), window, model_id="openai/tiny")
    message = str(raised.value)
    assert "1,101 tokens" in message and "1,000-token context window" in message
    assert "over 10%" in message and "nothing was sent" in message and "openai/tiny" in message
    assert raised.value.retryable is False


def test_unknown_models_are_never_refused(no_tiktoken: None) -> None:
    assert check_context_window(_prompt_of(50_000), catalog.lookup("nowhere/other-mystery")).tokens == 50_000


def test_exact_counts_use_a_small_margin(fake_tiktoken: FakeTiktoken) -> None:
    fake_tiktoken.cache("o200k_base")
    window = Capabilities(context_window=100, known=True)
    fits = _request(" ".join(["w"] * 94))  # 7 framing + 94 words = 101: within 1%
    assert check_context_window(fits, window).tokens == 101
    with pytest.raises(ContextWindowExceededError, match="counted with the model's tokenizer"):
        check_context_window(_request(" ".join(["w"] * 95)), window)  # 102 > 101
