"""Text from files: one extractor per media type, each returning a :class:`Document` of sections.

The built-ins read PDF (pypdf, a section per page), DOCX (python-docx, a section per heading, tables
as rows), HTML (selectolax's Lexbor parser: scripts, styles and navigation dropped, the title kept),
Markdown (a section per heading, fences respected), plain text, CSV (each row as ``header: value``
pairs) and JSON (each leaf as ``path: value``). :class:`Extractors` maps media types to functions;
``register`` adds or replaces one. A file that yields no text is an :class:`ExtractionError` with a
code that says why (``encrypted``, ``no_text``, ``unsupported_type``, ``corrupt``), never an empty
document. Extraction is CPU work: callers run it in a thread.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentadapter.knowledge.detect import DOCX, PDF, decode_text
from agentadapter.knowledge.errors import ExtractionError

__all__ = ["Document", "Extractor", "Extractors", "Section", "default_extractors"]


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of a document's text: a page, or what follows a heading."""

    text: str
    page: int | None = None
    """1-based page number (PDF)."""
    title: str | None = None
    """The heading the text sits under (Markdown, DOCX, HTML's title)."""


@dataclass(slots=True)
class Document:
    """A file's text as sections; :attr:`text` joins them with blank lines (chunk spans index into it)."""

    media_type: str
    sections: list[Section] = field(default_factory=list)

    SEPARATOR = "\n\n"

    @property
    def text(self) -> str:
        return self.SEPARATOR.join(s.text for s in self.sections)

    @property
    def chars(self) -> int:
        return sum(len(s.text) for s in self.sections) + len(self.SEPARATOR) * max(len(self.sections) - 1, 0)


Extractor = Callable[[bytes], Document]
"""A function of a file's bytes to its document; raises :class:`ExtractionError` when it cannot."""


def _text_of(data: bytes, what: str) -> str:
    text = decode_text(data)
    if text is None:
        raise ExtractionError(f"the {what} is not UTF-8 (or UTF-16 with a byte-order mark) text; convert it to UTF-8",
                              code="not_text")
    return text


def extract_plain(data: bytes) -> Document:
    return Document("text/plain", [Section(_text_of(data, "text file"))])


# Headings and fence lines, found in one pass over the text (a document has far fewer of them than lines).
_MARKERS = re.compile(r"^(?:(```|~~~)[^\n]*|(#{1,6})[ \t]+([^\n]+?)[ \t#]*)$", re.M)


def extract_markdown(data: bytes) -> Document:
    """A section per ATX heading (``#`` lines outside code fences); the heading line stays in its section."""
    text = _text_of(data, "Markdown file")
    sections: list[Section] = []
    title: str | None = None
    start = 0
    fence: str | None = None
    for marker in _MARKERS.finditer(text):
        opener = marker.group(1)
        if opener:
            fence = None if fence == opener else (fence or opener)
            continue
        if fence is not None:
            continue
        position = marker.start()
        if position > start:
            body = text[start:position].strip("\n")
            if body.strip():
                sections.append(Section(body, title=title))
            start = position
        title = marker.group(3).strip()
    body = text[start:].strip("\n")
    if body.strip():
        sections.append(Section(body, title=title))
    return Document("text/markdown", sections)


def extract_csv(data: bytes) -> Document:
    """Each row as ``header: value; ...`` on a line of its own (the header row names the columns)."""
    text = _text_of(data, "CSV file")
    try:
        dialect: Any = csv.Sniffer().sniff(text[:16384], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader, None)
        if header is None:
            return Document("text/csv", [])
        lines = []
        for row in reader:
            if any(cell.strip() for cell in row):
                lines.append("; ".join(f"{name}: {value}" for name, value in zip(header, row, strict=False)
                                       if value.strip()))
    except csv.Error as exc:
        raise ExtractionError(f"the CSV file cannot be parsed: {exc}", code="corrupt") from exc
    return Document("text/csv", [Section("\n".join(lines))] if lines else [])


def _leaves(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    elif value is not None and value != "":
        yield f"{path or '$'}: {value}"


def extract_json(data: bytes) -> Document:
    """Each leaf value as ``path: value`` (``items[0].name: Ada``)."""
    text = _text_of(data, "JSON file")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ExtractionError(f"the JSON file cannot be parsed: {exc}", code="corrupt") from exc
    lines = "\n".join(_leaves(value, ""))
    return Document("application/json", [Section(lines)] if lines else [])


_BLANKS = re.compile(r"\n[ \t\r\f\v]*(?:\n[ \t\r\f\v]*)+")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text)
    return _BLANKS.sub("\n\n", text).strip()


def extract_html(data: bytes) -> Document:
    """The readable text of a page: scripts, styles, navigation, headers and footers dropped."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(data)
    title_node = tree.css_first("title")
    title = _tidy(title_node.text()) if title_node is not None else None
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "nav", "header", "footer", "iframe", "form"])
    root = tree.body or tree.root
    if root is None:
        return Document("text/html", [])
    # Block elements end paragraphs; inline ones (<b>, <a>) stay inside their sentence.
    for node in tree.css(_BLOCKS):
        node.insert_after("\n" if node.tag == "br" else "\n\n")
    text = _tidy(root.text(separator="", strip=False))
    return Document("text/html", [Section(text, title=title or None)] if text else [])


_BLOCKS = ("p,div,h1,h2,h3,h4,h5,h6,li,br,tr,pre,blockquote,section,article,main,aside,table,ul,ol,dl,dd,dt,"
           "figcaption,address,hr")


def extract_pdf(data: bytes) -> Document:
    """A section per page; an encrypted PDF (no empty password opens it) or one without a text layer fails."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PdfStreamError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("the PDF is encrypted with a password; upload an unencrypted copy",
                                  code="encrypted")
        sections = []
        images = 0
        for number, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section(text, page=number))
            else:
                images += len(page.images) if hasattr(page, "images") else 0
    except ExtractionError:
        raise
    except FileNotDecryptedError as exc:
        raise ExtractionError("the PDF is encrypted with a password; upload an unencrypted copy",
                              code="encrypted") from exc
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError(f"the PDF cannot be read ({type(exc).__name__}: {exc}); it may be damaged",
                              code="corrupt") from exc
    if not sections:
        why = (" its pages are images (a scan?): run OCR on it first" if images else
               " it has no text layer (a scan?): run OCR on it first")
        raise ExtractionError(f"the PDF has no extractable text;{why}", code="no_text")
    return Document(PDF, sections)


def extract_docx(data: bytes) -> Document:
    """A section per heading (paragraph styles named ``Heading``/``Title``); tables as ``cell | cell`` rows."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise ExtractionError(f"the DOCX file cannot be read ({type(exc).__name__}: {exc})", code="corrupt") from exc
    sections: list[Section] = []
    title: str | None = None
    lines: list[str] = []

    def close() -> None:
        body = "\n\n".join(line for line in lines if line.strip())
        if body.strip():
            sections.append(Section(body, title=title))
        lines.clear()

    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        if style.startswith(("Heading", "Title")) and text:
            close()
            title = text
        lines.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells]
            if any(cells):
                lines.append(" | ".join(cells))
    close()
    return Document(DOCX, sections)


class Extractors:
    """The extractor of each media type; :meth:`extract` picks one and refuses an empty result."""

    def __init__(self, extractors: dict[str, Extractor] | None = None) -> None:
        self._by_type: dict[str, Extractor] = dict(extractors or {})

    def register(self, media_type: str, extractor: Extractor) -> None:
        """Read ``media_type`` with ``extractor`` (replacing the one there was)."""
        self._by_type[media_type] = extractor

    def supports(self, media_type: str) -> bool:
        return media_type in self._by_type

    @property
    def media_types(self) -> list[str]:
        return sorted(self._by_type)

    def extract(self, data: bytes, media_type: str) -> Document:
        """The document of ``data``; :class:`ExtractionError` when its type has no extractor or it has no text."""
        extractor = self._by_type.get(media_type)
        if extractor is None:
            raise ExtractionError(f"files of type {media_type} cannot be read; the readable types are "
                                  f"{', '.join(self.media_types)}", code="unsupported_type")
        document = extractor(data)
        if not any(section.text.strip() for section in document.sections):
            raise ExtractionError("the file holds no text to index (it is empty, or only markup or blank cells)",
                                  code="no_text")
        return document


def default_extractors() -> Extractors:
    """The built-in extractors (a new registry each call: registering on it changes no one else's)."""
    return Extractors({
        PDF: extract_pdf, DOCX: extract_docx, "text/html": extract_html, "text/markdown": extract_markdown,
        "text/plain": extract_plain, "text/csv": extract_csv, "application/json": extract_json,
    })
