"""Exact OpenAI token counts offline, images and documents at their real cost, and LLM.count_tokens.

The exact counts use the real tiktoken with OpenAI's encoding files as a package ships them (the
``tokens`` extra), checked against the sha256 tiktoken declares; any attempt to download or to open
a socket fails these tests. Provider counts go to the loopback fakes of Anthropic and Gemini.
"""

from __future__ import annotations

import gzip
import importlib
import os
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentadapter import LLM
from agentadapter.llm import tokens
from agentadapter.llm.errors import CapabilityError
from agentadapter.llm.media_tokens import image_size, image_tokens, pdf_page_tokens
from agentadapter.llm.messages import FilePart, ImagePart, Message, Request
from agentadapter.llm.tokens import count_tokens_local
from fakes.anthropic_server import AnthropicFake
from fakes.gemini_server import GeminiFake

pytestmark = pytest.mark.usefixtures("fresh_encodings")


def _require_tokens_extra() -> None:
    missing = [name for name in ("tiktoken", "bpe_openai") if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed; pip install -e '.[tokens]'"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} - under CI a missing package is a failure", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network and an empty tiktoken cache: a count that tried to download would fail loudly."""
    _require_tokens_extra()
    import tiktoken.load

    def no_download(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError(f"tiktoken tried to fetch {args[:1]}")

    def no_socket(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a token count opened a socket")

    monkeypatch.setattr(tiktoken.load, "read_file", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))


def _user(*parts: Any) -> Request:
    return Request(model="gpt-4o", messages=[Message.user(list(parts) if len(parts) > 1 else parts[0])])


# ----------------------------------------------------------------------------------- exact, offline


@pytest.mark.parametrize(("encoding_name", "text", "ids"), [
    ("o200k_base", "hello world", [24912, 2375]),
    ("o200k_base", "これは日本語の文章です。", [139832, 9048, 40909, 3385, 26474, 15121, 788]),
    ("cl100k_base", "hello world", [15339, 1917]),
    ("cl100k_base", "Ceci est une phrase en français.", [34, 76832, 1826, 6316, 17571, 665, 55467, 13]),
])
def test_openai_encodings_load_offline_from_the_packaged_files(offline: None, encoding_name: str, text: str,
                                                               ids: list[int]) -> None:
    encoding = tokens._cached_encoding(encoding_name)
    assert encoding is not None and encoding.encode_ordinary(text) == ids


def test_openai_models_are_counted_exactly_offline(offline: None) -> None:
    request = _user("hello world")
    counted = count_tokens_local(request, "openai/gpt-4o")
    # OpenAI's chat framing: 3 reply priming + 3 per message + "user" (1) + the text (2)
    assert counted.exact and counted.method == "tiktoken:o200k_base" and counted.tokens == 9
    assert count_tokens_local(request, "openai/gpt-4-turbo").method == "tiktoken:cl100k_base"


def test_a_data_file_that_is_not_tiktokens_own_is_refused(offline: None, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = tokens.packaged_encoding_file("o200k_base")
    assert real is not None
    tampered = tmp_path / "o200k_base.tiktoken.gz"
    contents = gzip.decompress(real.read_bytes()).replace(b" 0\n", b" 1\n", 1)
    tampered.write_bytes(gzip.compress(contents))
    monkeypatch.setattr(tokens, "packaged_encoding_file", lambda name: tampered)
    counted = count_tokens_local(_user("hello world"), "openai/gpt-4o")
    assert counted.exact is False and counted.method == "estimate:chars/4"


# ------------------------------------------------------------------------------ images, documents


def _png(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x00" * 9
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def test_image_sizes_are_read_from_their_headers() -> None:
    assert image_size(_png(1024, 768)) == (1024, 768)
    assert image_size(_jpeg(640, 480)) == (640, 480)
    assert image_size(b"GIF89a" + struct.pack("<HH", 32, 16)) == (32, 16)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (299).to_bytes(3, "little") + (199).to_bytes(3, "little")
    assert image_size(vp8x) == (300, 200)
    assert image_size(b"not an image") is None and image_size(_png(0, 0)[:20]) is None


@pytest.mark.parametrize(("model_id", "size", "detail", "cost"), [
    ("openai/gpt-4o", (1024, 1024), None, 85 + 170 * 4),  # scaled to 768x768: 4 tiles
    ("openai/gpt-4o", (512, 512), None, 85 + 170),
    ("openai/gpt-4o", (4096, 2048), None, 85 + 170 * 6),  # 2048x1024, then 1536x768: 3x2 tiles
    ("openai/gpt-4o", (4096, 2048), "low", 85),
    ("openai/gpt-4.1-mini", (1024, 1024), None, 1659),  # 1024 patches x 1.62
    ("openai/gpt-4.1-mini", (4096, 4096), None, 2465),  # shrunk to 1521 patches (39x39) x 1.62, rounded up
    ("anthropic/claude-sonnet-4-5", (1000, 1000), None, 1334),  # 1000 x 1000 / 750
    ("anthropic/claude-sonnet-4-5", (200, 200), None, 54),
    ("gemini/gemini-2.5-pro", (300, 300), None, 258),
    ("gemini/gemini-2.5-pro", (1000, 800), None, 4 * 258),
])
def test_an_image_costs_what_the_provider_bills_for_its_size(model_id: str, size: tuple[int, int],
                                                             detail: str | None, cost: int) -> None:
    assert image_tokens(model_id, size=size, detail=detail) == cost
    # never above the ceiling a spend guard holds (for images within the providers' limits)
    assert image_tokens(model_id, size=size, detail=detail) <= image_tokens(model_id, detail=detail)


def test_images_and_documents_count_at_their_real_cost(offline: None) -> None:
    plain = count_tokens_local(_user("describe"), "openai/gpt-4o")
    image = ImagePart(data=_png(512, 512), media_type="image/png")
    pictured = count_tokens_local(
        Request(model="gpt-4o", messages=[Message("user", [*_user("describe").messages[0].parts, image])]),
        "openai/gpt-4o")
    assert pictured.tokens == plain.tokens + 255 and pictured.media_tokens == 255 and pictured.exact is False
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Pages >>\n2 0 obj << /Type /Page >>\n3 0 obj << /Type /Page >>\n"
    with_pdf = Request(model="x", messages=[Message("user", [FilePart(data=pdf, media_type="application/pdf")])])
    counted = count_tokens_local(with_pdf, "anthropic/claude-sonnet-4-5")
    assert counted.media_tokens == 2 * pdf_page_tokens("anthropic/claude-sonnet-4-5") and not counted.exact


# --------------------------------------------------------------------------------- LLM.count_tokens


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Any]]:
    servers = {"anthropic": AnthropicFake(), "gemini": GeminiFake()}
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.close()


def _llm(fakes: dict[str, Any]) -> LLM:
    return LLM(config={}, environ={
        "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": fakes["anthropic"].url,
        "GEMINI_API_KEY": "test-key", "GEMINI_BASE_URL": fakes["gemini"].url,
        "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    })


async def test_count_tokens_is_local_unless_the_provider_is_asked(fakes: dict[str, Any]) -> None:
    llm = _llm(fakes)
    local = await llm.count_tokens("anthropic/claude-sonnet-4-5", "How many tokens is this?")
    assert local.exact is False and local.method == "estimate:chars/4"
    assert fakes["anthropic"].requests == []

    fakes["anthropic"].token_count = 17
    counted = await llm.count_tokens("anthropic/claude-sonnet-4-5", "How many tokens is this?", exact=True)
    assert (counted.tokens, counted.exact, counted.method) == (17, True, "provider:anthropic")
    [recorded] = fakes["anthropic"].requests
    assert recorded.path == "/v1/messages/count_tokens"
    assert recorded.json["model"] == "claude-sonnet-4-5"

    counted = await llm.count_tokens("gemini/gemini-2.5-flash", "How many tokens is this?", exact=True)
    assert counted.exact and counted.method == "provider:gemini" and counted.tokens > 0
    assert any(r.path.endswith("gemini-2.5-flash:countTokens") for r in fakes["gemini"].requests)
    await llm.aclose()


async def test_exact_counts_of_openai_models_stay_local(fakes: dict[str, Any], offline: None) -> None:
    llm = _llm(fakes)  # its OpenAI base URL answers nothing: the count must not go there
    counted = await llm.count_tokens("openai/gpt-4o", "hello world", exact=True)
    assert (counted.tokens, counted.exact, counted.method) == (9, True, "tiktoken:o200k_base")
    await llm.aclose()


async def test_an_exact_count_nobody_can_give_is_refused(fakes: dict[str, Any]) -> None:
    llm = LLM(config={}, environ={"DEEPSEEK_API_KEY": "sk-test", "DEEPSEEK_BASE_URL": "http://127.0.0.1:9"})
    with pytest.raises(CapabilityError, match="no exact token count for deepseek/deepseek-chat"):
        await llm.count_tokens("deepseek/deepseek-chat", "hello", exact=True)
    await llm.aclose()
