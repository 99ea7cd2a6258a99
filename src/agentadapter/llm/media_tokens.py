"""What images and documents cost in input tokens, by each provider's published rules.

Providers bill an image by its size, not its bytes, and a PDF by its pages. This module holds those
rules once, for both of their users: token counting (:mod:`agentadapter.llm.tokens`, the cost of
*this* image, read from its header when the bytes are at hand) and the worst-case bound a spend guard
holds (:mod:`agentadapter.llm.bounds`, the most any image the provider accepts can cost).

- **OpenAI tile models** (gpt-4o, gpt-4.1, gpt-5, o1, o3): the image is scaled to fit 2048x2048, then
  so that its short side is at most 768; each 512-pixel tile costs the model's tile price, plus a base
  price (low detail: the base alone).
- **OpenAI patch models** (gpt-4.1-mini/nano, gpt-5-mini/nano, o4-mini): 32-pixel patches, at most
  1536 (larger images are scaled down to fit), times the model's multiplier.
- **Anthropic**: width x height / 750, after scaling to a long edge of at most 1568 pixels and about
  1.15 megapixels.
- **Gemini**: 258 tokens for an image whose sides are both at most 384 pixels, else 258 per
  768x768 tile.
- **PDF pages**: Gemini bills 258-560 tokens a page; OpenAI and Anthropic bill each page's text
  (up to :data:`DOCUMENT_TEXT_TOKENS_PER_PAGE`) and its image.

Dimensions are read from PNG, JPEG, GIF and WebP headers (the formats the providers take); an image
given by URL, or whose header cannot be read, costs the provider's ceiling.
"""

from __future__ import annotations

import dataclasses
import math
import re
import struct

from agentadapter.llm.messages import FilePart, ImagePart, Message, Part, Request, TextPart

__all__ = [
    "DEFAULT_IMAGE_TOKENS",
    "DOCUMENT_TEXT_TOKENS_PER_PAGE",
    "IMAGE_TOKENS",
    "PDF_PAGE_TOKENS",
    "MediaCost",
    "document_tokens",
    "image_size",
    "image_tokens",
    "pdf_page_tokens",
    "split_media",
]

# The most one image can cost, in input tokens, by the providers' published vision rules applied to
# the largest image each accepts (images are scaled down to it, never billed beyond it):
# - OpenAI tile models, high detail: base + tile price x 8 tiles (a 768x2048 image after scaling);
#   low detail is the base alone. gpt-4o-mini bills images at 2833 + 5667 per tile.
# - OpenAI patch models: at most 1536 32-pixel patches, times the model's multiplier.
# - Anthropic: about 1,600 tokens (width x height / 750, images scaled to ~1.15 megapixels).
# - Gemini: 258 tokens per 768x768 tile; the ceiling assumes a 3072x3072 image (16 tiles).
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
_PATCH = 32
_TILE = 512
_ANTHROPIC_LONG_EDGE = 1568
_ANTHROPIC_MAX_PIXELS = 1_150_000
_ANTHROPIC_PIXELS_PER_TOKEN = 750
_GEMINI_SMALL = 384
_GEMINI_TILE = 768
_GEMINI_TILE_TOKENS = 258

IMAGE_TOKENS: dict[str, int] = {"anthropic": 1600, "gemini": 16 * _GEMINI_TILE_TOKENS}
"""The most one image costs per vendor without per-model rules (OpenAI's depend on the model)."""

DEFAULT_IMAGE_TOKENS = 16 * _GEMINI_TILE_TOKENS
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


# ------------------------------------------------------------------------------------------ images


def image_tokens(model_id: str, *, detail: str | None = None, size: tuple[int, int] | None = None) -> int:
    """What one image costs ``model_id`` in input tokens.

    ``size`` (width, height in pixels) gives the provider's cost of that image; without it, the
    most any image can cost (the ceiling a spend guard holds).
    """
    vendor, name = _vendor_and_name(model_id)
    if vendor == "openai":
        return _openai_image_tokens(name, detail, size)
    if size is not None and vendor == "anthropic":
        width, height = _scaled(size, _ANTHROPIC_LONG_EDGE, _ANTHROPIC_MAX_PIXELS)
        return math.ceil(width * height / _ANTHROPIC_PIXELS_PER_TOKEN)
    if size is not None and vendor == "gemini":
        width, height = size
        if width <= _GEMINI_SMALL and height <= _GEMINI_SMALL:
            return _GEMINI_TILE_TOKENS
        return math.ceil(width / _GEMINI_TILE) * math.ceil(height / _GEMINI_TILE) * _GEMINI_TILE_TOKENS
    return IMAGE_TOKENS.get(vendor, DEFAULT_IMAGE_TOKENS)


def _openai_image_tokens(name: str, detail: str | None, size: tuple[int, int] | None) -> int:
    for prefix, base, tile in _OPENAI_TILES:
        if name.startswith(prefix):
            return _tile_tokens(base, tile, detail, size)
    for prefix, multiplier in _OPENAI_PATCHES:
        if name.startswith(prefix):
            patches = _MAX_PATCHES if size is None else _patches(size)
            return -(-int(patches * multiplier * 100) // 100)  # ceil, without float surprises
    for prefix, base, tile in _OPENAI_TILE_FALLBACK:
        if name.startswith(prefix):
            return _tile_tokens(base, tile, detail, size)
    return max(DEFAULT_IMAGE_TOKENS, -(-int(_MAX_PATCHES * 2.46 * 100) // 100))


def _tile_tokens(base: int, per_tile: int, detail: str | None, size: tuple[int, int] | None) -> int:
    if detail == "low":
        return base
    if size is None:
        return base + per_tile * _MAX_TILES
    width, height = _scaled(size, 2048, None)
    short = min(width, height)
    if short > 768:  # then scaled so that the short side is 768 pixels
        width, height = width * 768 / short, height * 768 / short
    return base + per_tile * math.ceil(width / _TILE) * math.ceil(height / _TILE)


def _patches(size: tuple[int, int]) -> int:
    width, height = float(size[0]), float(size[1])
    if math.ceil(width / _PATCH) * math.ceil(height / _PATCH) > _MAX_PATCHES:
        # OpenAI's recipe: shrink to fit 1536 patches, then so that whole patches fit the width or height.
        shrink = math.sqrt(_PATCH * _PATCH * _MAX_PATCHES / (width * height))
        shrink *= min(math.floor(width * shrink / _PATCH) / (width * shrink / _PATCH),
                      math.floor(height * shrink / _PATCH) / (height * shrink / _PATCH))
        width, height = width * shrink, height * shrink
    return min(_MAX_PATCHES, math.ceil(width / _PATCH) * math.ceil(height / _PATCH))


def _scaled(size: tuple[int, int], long_edge: int, max_pixels: int | None) -> tuple[float, float]:
    """``size`` scaled down (never up) to fit ``long_edge`` and ``max_pixels``."""
    width, height = float(size[0]), float(size[1])
    factor = min(1.0, long_edge / max(width, height, 1.0))
    if max_pixels is not None and width * height > 0:
        factor = min(factor, math.sqrt(max_pixels / (width * height)))
    return width * factor, height * factor


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image from its header, or None when it cannot be read."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
        elif data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
        elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        elif data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        else:
            return None
    except struct.error:  # a truncated header
        return None
    return (width, height) if width > 0 and height > 0 else None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    elif chunk == b"VP8 ":
        width, height = (value & 0x3FFF for value in struct.unpack("<HH", data[26:30]))
    elif chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        return None
    return (width, height) if width > 0 and height > 0 else None


# JPEG start-of-frame markers (baseline, progressive, ...): the ones that carry the dimensions.
_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2:offset + 4])
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            return (width, height) if width > 0 and height > 0 else None
        offset += 2 + length
    return None


# --------------------------------------------------------------------------------------- documents


def pdf_page_tokens(model_id: str) -> int:
    """The most one PDF page may cost ``model_id``: the vendor's page price, or text plus an image."""
    vendor, _ = _vendor_and_name(model_id)
    return PDF_PAGE_TOKENS.get(vendor) or DOCUMENT_TEXT_TOKENS_PER_PAGE + image_tokens(model_id)


def document_tokens(part: FilePart, model_id: str) -> tuple[str | None, int | None]:
    """(the document as text, None) for UTF-8 text; (None, tokens) for a PDF whose pages can be
    counted; (None, None) when it cannot be measured (a URL, a compressed PDF, binary data)."""
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


# ------------------------------------------------------------------------------------- a request


@dataclasses.dataclass(slots=True, frozen=True)
class MediaCost:
    """A request's images and documents, taken out and priced in tokens."""

    text_only: Request
    """The request without its images and documents (UTF-8 documents stay, as text)."""
    tokens: int
    """What the images and measurable documents cost."""
    unmeasured: int
    """Documents whose size cannot be known (given by URL, compressed PDFs, binary data)."""


def split_media(request: Request, model_id: str, *, ceiling: bool) -> MediaCost:
    """Take ``request``'s images and documents out and price them for ``model_id``.

    ``ceiling`` prices each image at the most it may cost (what a spend guard holds: never less than
    the cost of its actual size, when that can be read); otherwise at the cost of its size, read
    from its bytes (the ceiling when they are not at hand).
    """
    media_tokens = 0
    unmeasured = 0
    messages: list[Message] = []
    changed = False
    for message in request.messages:
        parts: list[Part] = []
        has_media = False
        for part in message.parts:
            if isinstance(part, ImagePart):
                size = image_size(part.data) if part.data is not None else None
                sized = image_tokens(model_id, detail=part.detail, size=size)
                media_tokens += max(sized, image_tokens(model_id, detail=part.detail)) if ceiling else sized
            elif isinstance(part, FilePart):
                as_text, tokens = document_tokens(part, model_id)
                if as_text is not None:
                    parts.append(TextPart(as_text))
                elif tokens is None:
                    unmeasured += 1
                else:
                    media_tokens += tokens
            else:
                parts.append(part)
                continue
            has_media = True
        messages.append(dataclasses.replace(message, parts=parts) if has_media else message)
        changed = changed or has_media
    text_only = dataclasses.replace(request, messages=messages) if changed else request
    return MediaCost(text_only, media_tokens, unmeasured)
