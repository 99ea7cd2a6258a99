"""Chunks of a document for embedding and citation: token-bounded, overlapping, never across a section.

Each section (a page, or what follows a heading) is cut on its own. A chunk takes at most
``max_tokens * 4`` characters and ends at the best break in the second half of that window: the last
paragraph break, else the last sentence end, else a line end or a space (a word is cut only when a
window holds no space at all); text of many short words is cut shorter, so that its word count stays
within ``max_tokens`` too. The next chunk starts at the first sentence (else word) start within the last
``overlap_tokens * 4`` characters of the previous one, so a passage cut at a chunk's end is whole in
the next. Each step is a few string searches in C over a window (no pass per paragraph or word),
which keeps chunking near the speed of reading the text. A chunk keeps its page, its section title
and its character span in :attr:`Document.text <agentadapter.knowledge.extract.Document.text>`, which
is what a citation shows.

Tokens are estimated, not counted with a model's tokenizer: ``max(words, characters / 4)``, which
stays at or above the word-piece count of English text for the usual sentence-embedding models (about
1.3 pieces a word, 4 characters a piece). Counting with a real tokenizer costs more than the rest of
ingestion together; keep ``max_tokens`` under the embedding model's limit with that margin (the
default 200 suits all-MiniLM-L6-v2's 256).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentadapter.knowledge.extract import Document

__all__ = ["Chunk", "ChunkingOptions", "chunk_document", "estimate_tokens"]



def estimate_tokens(text: str) -> int:
    """``max(words, characters / 4)``, rounded up; at least 1 for any non-blank text."""
    return _tokens(text, 0, len(text))


def _tokens(text: str, start: int, end: int) -> int:
    # Words as separators + 1, counted without copying: a run of spaces counts more than once, which only
    # errs toward smaller chunks.
    words = text.count(" ", start, end) + text.count("\n", start, end) + 1
    return max(words, (end - start + 3) // 4)


@dataclass(frozen=True, slots=True)
class ChunkingOptions:
    """How documents are cut."""

    max_tokens: int = 200
    """Estimated tokens a chunk holds at most."""
    overlap_tokens: int = 40
    """Estimated tokens of the previous chunk that the next one starts with (0: none)."""

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be at least 0 and less than max_tokens")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document, with where it came from."""

    text: str
    char_start: int
    """Offset of its first character in the document's text."""
    char_end: int
    """Offset just past its last character."""
    tokens: int
    page: int | None = None
    section: str | None = None


def _snap_end(text: str, start: int, limit: int) -> int:
    """Where a chunk that may run to ``limit`` should end: at the last paragraph break in its second half,
    else the last sentence end, line end or space there, else at ``limit`` (a cut inside a word)."""
    low = start + (limit - start) // 2
    position = text.rfind("\n\n", low, limit)
    if position > start:
        return position
    position = text.rfind(". ", low, limit)  # the usual sentence end first: one search in most windows
    if position < low:
        position = max(text.rfind("? ", low, limit), text.rfind("! ", low, limit), text.rfind(".\n", low, limit),
                       text.rfind("\u3002", low, limit))
    if position > start:
        return position + 1
    position = text.rfind("\n", low, limit)
    if position <= start:
        position = text.rfind(" ", low, limit)
    return position if position > start else limit


_SENTENCE_START = re.compile(r"[.!?\u3002]\s+(?=\S)")


def _snap_start(text: str, low: int, high: int) -> int:
    """Where the overlap of the next chunk starts in ``text[low:high]``: the first sentence start there,
    else the first word start, else ``high`` (no overlap)."""
    match = _SENTENCE_START.search(text, low, high)
    if match is not None:
        return match.end()
    position = text.find(" ", low, high)
    return position + 1 if position >= 0 else high


def _skip_spaces(text: str, position: int, end: int) -> int:
    while position < end and text[position].isspace():
        position += 1
    return position


def chunk_document(document: Document, options: ChunkingOptions | None = None) -> list[Chunk]:
    """The document's chunks, in order."""
    options = options or ChunkingOptions()
    max_chars = options.max_tokens * 4
    overlap_chars = options.overlap_tokens * 4
    chunks: list[Chunk] = []
    base = 0
    for section in document.sections:
        text = section.text
        size = len(text)
        start = _skip_spaces(text, 0, size)
        while start < size:
            limit = min(size, start + max_chars)
            end = size if limit == size else _snap_end(text, start, limit)
            tokens = _tokens(text, start, end)
            while tokens > options.max_tokens:  # many short words: fewer characters, at a word boundary
                shorter = start + max(1, (end - start) * options.max_tokens // tokens)
                space = text.rfind(" ", start + 1, shorter)
                end = space if space > start else shorter
                tokens = _tokens(text, start, end)
            piece = text[start:end].rstrip()
            last = start + len(piece)
            chunks.append(Chunk(piece, base + start, base + last, tokens, section.page, section.title))
            if end >= size:
                break
            following = end
            if overlap_chars:
                resume = _snap_start(text, max(start + 1, last - overlap_chars), last)
                if start < resume < last:
                    following = resume
            start = _skip_spaces(text, following, size)
        base += size + len(Document.SEPARATOR)
    return chunks
