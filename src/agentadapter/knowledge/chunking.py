"""Chunks of a document for embedding and citation: token-bounded, overlapping, never across a section.

Each section (a page, or what follows a heading) is cut into units - paragraphs; a paragraph longer
than a chunk is cut at sentence ends, and a sentence longer than a chunk at word boundaries - and
units are packed greedily into chunks of at most ``max_tokens``. The next chunk starts with the last
units of the previous one that fit in ``overlap_tokens``, so a passage cut at a chunk's end is whole
in the next. A chunk keeps its page, its section title and its character span in
:attr:`Document.text <agentadapter.knowledge.extract.Document.text>`, which is what a citation shows.

Tokens are estimated, not counted with a model's tokenizer: ``max(words, characters / 4)``, which
stays at or above the word-piece count of English text for the usual sentence-embedding models (about
1.3 pieces a word, 4 characters a piece). Counting with a real tokenizer costs more than the rest of
ingestion together; keep ``max_tokens`` under the embedding model's limit with that margin (the
default 200 suits all-MiniLM-L6-v2's 256).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from agentadapter.knowledge.extract import Document

__all__ = ["Chunk", "ChunkingOptions", "chunk_document", "estimate_tokens"]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile("(?<=[.!?\u3002\uff01\uff1f])\\s+")  # ASCII and CJK full stops
_WORD = re.compile(r"\S+")


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


def _spans(text: str, pattern: re.Pattern[str], start: int, end: int) -> Iterator[tuple[int, int]]:
    """The pieces of ``text[start:end]`` between matches of ``pattern``, blank ones left out."""
    position = start
    for match in pattern.finditer(text, start, end):
        if match.start() > position and text[position:match.start()].strip():
            yield position, match.start()
        position = match.end()
    if end > position and text[position:end].strip():
        yield position, end


def _units(text: str, max_tokens: int, split_tokens: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, tokens)`` units of ``text``: paragraphs within ``max_tokens``, and the sentences (or word
    windows) of longer ones within ``split_tokens`` (so that an overlap and the next piece fit a chunk)."""
    for start, end in _spans(text, _PARAGRAPH_BREAK, 0, len(text)):
        tokens = _tokens(text, start, end)
        if tokens <= max_tokens:
            yield start, end, tokens
            continue
        for s_start, s_end in _spans(text, _SENTENCE_END, start, end):
            s_tokens = _tokens(text, s_start, s_end)
            if s_tokens <= split_tokens:
                yield s_start, s_end, s_tokens
                continue
            yield from _word_windows(text, s_start, s_end, split_tokens)


def _word_windows(text: str, start: int, end: int, max_tokens: int) -> Iterator[tuple[int, int, int]]:
    window_start: int | None = None
    window_end = start
    for match in _WORD.finditer(text, start, end):
        word_start, word_end = match.span()
        if window_start is not None and _tokens(text, window_start, word_end) > max_tokens:
            yield window_start, window_end, _tokens(text, window_start, window_end)
            window_start = None
        if window_start is None:
            window_start = word_start
            # A single "word" longer than a chunk (a base64 blob, a long URL): cut it by characters.
            while _tokens(text, window_start, word_end) > max_tokens:
                cut = window_start + max_tokens * 4
                yield window_start, cut, _tokens(text, window_start, cut)
                window_start = cut
        window_end = word_end
    if window_start is not None and window_end > window_start:
        yield window_start, window_end, _tokens(text, window_start, window_end)


def _tail(text: str, start: int, end: int, budget: int) -> tuple[int, int] | None:
    """``(position, tokens)`` of a tail of ``text[start:end]`` within ``budget``: from the first sentence start
    in its last ``budget * 4`` characters, else from the first word start there; None when none fits."""
    earliest = max(start, end - budget * 4)
    boundary = _SENTENCE_END.search(text, earliest, end)
    if boundary is not None:
        position = boundary.end()
    else:
        space = text.find(" ", earliest, end) if earliest > start else start - 1
        position = space + 1
    if position <= start or position >= end:
        return None
    tokens = _tokens(text, position, end)
    return (position, tokens) if tokens <= budget else None


def chunk_document(document: Document, options: ChunkingOptions | None = None) -> list[Chunk]:
    """The document's chunks, in order."""
    options = options or ChunkingOptions()
    chunks: list[Chunk] = []
    base = 0
    for section in document.sections:
        text = section.text
        units = list(_units(text, options.max_tokens, options.max_tokens - options.overlap_tokens))
        first = 0
        while first < len(units):
            last, total = first, units[first][2]
            while last + 1 < len(units) and total + units[last + 1][2] <= options.max_tokens:
                last += 1
                total += units[last][2]
            start, end = units[first][0], units[last][1]
            chunks.append(Chunk(text[start:end], base + start, base + end, total, section.page, section.title))
            if last + 1 >= len(units):
                break
            # The next chunk starts with the tail of this one that fits the overlap (always moving on):
            # whole units if any fit, else the last unit's closing sentences (or words).
            next_first, carried = last + 1, 0
            while next_first - 1 > first and carried + units[next_first - 1][2] <= options.overlap_tokens:
                next_first -= 1
                carried += units[next_first][2]
            if next_first == last + 1 and options.overlap_tokens:
                tail = _tail(text, units[last][0], units[last][1], options.overlap_tokens)
                if tail is not None and tail[1] + units[last + 1][2] <= options.max_tokens:
                    units[last] = (tail[0], units[last][1], tail[1])
                    next_first = last
            first = next_first
        base += len(text) + len(Document.SEPARATOR)
    return chunks
