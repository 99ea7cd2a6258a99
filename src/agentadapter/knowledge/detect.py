"""What a file is, from its bytes: the media type that picks its extractor.

Binary formats (PDF, DOCX, images, archives, executables) are recognised by their magic numbers with
the ``filetype`` library; the name a client gave is never trusted for them. Text has no magic number,
so a file that decodes as UTF-8 (or UTF-16 with a byte-order mark) is classified by its content: JSON
that parses, HTML by its opening tags, then the name's extension only to tell the text kinds apart
(``.md`` Markdown, ``.csv`` CSV when the sniffer agrees), then Markdown headings or fences, else plain
text. Anything else is ``application/octet-stream``, which no extractor reads.
"""

from __future__ import annotations

import codecs
import csv
import json
import re

__all__ = ["BINARY_SNIFF_BYTES", "MEDIA_TYPES", "decode_text", "detect_media_type"]

BINARY_SNIFF_BYTES = 8192
"""How much of the head of a file the magic-number check reads."""

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MEDIA_TYPES = (PDF, DOCX, "text/html", "text/markdown", "text/plain", "text/csv", "application/json")
"""The media types the built-in extractors read."""

_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title)\b", re.I | re.S)
_MARKDOWN = re.compile(r"^(?:#{1,6}\s+\S|```|~~~|\s*[-*+]\s+\[[ xX]\]\s)", re.M)
_TEXT_SAMPLE = 64 * 1024


def decode_text(data: bytes) -> str | None:
    """The text of ``data`` if it is UTF-8 (BOM or not) or UTF-16 with a BOM and holds no NUL; else None."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    return None if "\x00" in text else text


def _sample_is_text(sample: bytes) -> bool:
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sample's end is still text.
        return exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data"
    return True


def detect_media_type(data: bytes, filename: str | None = None) -> str:
    """The media type of ``data``: its magic number, else what its text is (see the module's docstring)."""
    import filetype

    head = data[:BINARY_SNIFF_BYTES]
    kind = filetype.guess(head) if head else None
    if kind is not None:
        if kind.mime == "application/zip" and b"word/" in data[:65536]:
            return DOCX  # filetype reads only the head; a DOCX whose parts come late still names word/ early
        return str(kind.mime)
    sample = data[:_TEXT_SAMPLE]
    if not _sample_is_text(sample):
        return "application/octet-stream"
    text = sample.decode("utf-8-sig", errors="ignore") if not sample.startswith(
        (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else (decode_text(data) or "")[:_TEXT_SAMPLE]
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") and len(data) <= 64 * 1024 * 1024:
        try:
            json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            pass
        else:
            return "application/json"
    if _HTML_START.match(sample.lstrip(codecs.BOM_UTF8)):
        return "text/html"
    extension = filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if extension in ("md", "markdown", "mdown", "mkd"):
        return "text/markdown"
    if extension in ("csv", "tsv") and _looks_like_csv(text):
        return "text/csv"
    if extension in ("html", "htm") and "<" in text:
        return "text/html"
    if _MARKDOWN.search(text):
        return "text/markdown"
    return "text/plain"


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return False
    return all(len(row) >= 2 for row in csv.reader(lines, dialect))
