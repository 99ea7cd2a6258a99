"""The knowledge library alone: type detection from content, extraction per type with its errors, chunking
(bounds, overlap, spans, sections), exact vector search and rank fusion, blob storage keys."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from agentadapter.knowledge import (
    ChunkingOptions,
    Document,
    ExtractionError,
    LocalStorage,
    Section,
    StorageError,
    VectorMatrix,
    chunk_document,
    default_extractors,
    detect_media_type,
    estimate_tokens,
    reciprocal_rank_fusion,
    storage_from_url,
)
from agentadapter.knowledge.detect import DOCX, PDF
from agentadapter.knowledge.search import to_blob
from agentadapter.llm.errors import ConfigurationError
from knowledge.documents import docx, image_only_pdf, pdf

EXTRACT = default_extractors()


@pytest.mark.parametrize(("data", "name", "expected"), [
    (b"%PDF-1.4 not really", "notes.txt", PDF),  # the content wins over the name
    (b'{"a": [1, 2]}', "data.txt", "application/json"),
    (b"<!DOCTYPE html><html><body>x</body></html>", "page.txt", "text/html"),
    (b"# Title\n\ntext", "readme", "text/markdown"),
    (b"plain words", "notes.md", "text/markdown"),
    (b"name,age\nAda,36\nAlan,41\n", "people.csv", "text/csv"),
    (b"name,age", "people.csv", "text/plain"),
    (b"just some text", None, "text/plain"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "photo.txt", "image/png"),
    (bytes(range(256)), "x.txt", "application/octet-stream"),
    ("caf\u00e9 au lait".encode("utf-16"), "x.txt", "text/plain"),
])
def test_media_types_come_from_the_content(data: bytes, name: str | None, expected: str) -> None:
    assert detect_media_type(data, name) == expected


def test_docx_is_detected_and_read_by_headings_with_tables() -> None:
    data = docx([("Heading 1", "Leave"), ("Normal", "Twenty-five days."), ("Heading 2", "Sick days"),
                 ("Normal", "As needed.")], table=[["Role", "Days"], ["Staff", "25"]])
    assert detect_media_type(data, "x.bin") == DOCX
    document = EXTRACT.extract(data, DOCX)
    assert [(s.title, s.text.splitlines()[0]) for s in document.sections] == [("Leave", "Leave"),
                                                                               ("Sick days", "Sick days")]
    assert "Role | Days" in document.sections[-1].text and "Staff | 25" in document.sections[-1].text


def test_pdf_pages_and_the_pdfs_that_cannot_be_read() -> None:
    document = EXTRACT.extract(pdf(["First page.", "Second page."]), PDF)
    assert [(s.page, s.text) for s in document.sections] == [(1, "First page."), (2, "Second page.")]
    for data, code in ((pdf(["secret"], password="pw"), "encrypted"), (image_only_pdf(), "no_text"),
                       (b"%PDF-1.4\n garbage", "corrupt")):
        with pytest.raises(ExtractionError) as refused:
            EXTRACT.extract(data, PDF)
        assert refused.value.code == code, refused.value


def test_html_markdown_csv_json_text() -> None:
    html = b"""<html><head><title>Guide</title><style>p{}</style></head><body><nav>Home | About</nav>
    <h1>Tides</h1><p>The <b>Moon</b> pulls the sea.</p><script>alert(1)</script><ul><li>one</li><li>two</li></ul>
    </body></html>"""
    page = EXTRACT.extract(html, "text/html")
    assert page.sections[0].title == "Guide"
    assert page.text == "Tides\n\nThe Moon pulls the sea.\n\none\n\ntwo"
    markdown = EXTRACT.extract(b"intro\n\n# A\n\ntext a\n\n```\n# not a heading\n```\n\n## B\n\ntext b", "text/markdown")
    assert [s.title for s in markdown.sections] == [None, "A", "B"]
    assert "# not a heading" in markdown.sections[1].text
    rows = EXTRACT.extract(b"name;city\nAda;London\n;\nAlan;Wilmslow\n", "text/csv")
    assert rows.text == "name: Ada; city: London\nname: Alan; city: Wilmslow"
    data = EXTRACT.extract(json.dumps({"team": [{"name": "Ada"}], "size": 1}).encode(), "application/json")
    assert data.text == "team[0].name: Ada\nsize: 1"
    for bad, media_type, code in ((b"   \n\n", "text/plain", "no_text"), (b"\xff\xfe\xfa", "text/plain", "not_text"),
                                  (b"{bad json", "application/json", "corrupt"),
                                  (b"\x00\x01", "application/zip", "unsupported_type"),
                                  (b"<html><script>x</script></html>", "text/html", "no_text")):
        with pytest.raises(ExtractionError) as refused:
            EXTRACT.extract(bad, media_type)
        assert refused.value.code == code


def test_extractors_are_pluggable_per_media_type() -> None:
    extractors = default_extractors()
    extractors.register("text/x-shout", lambda data: Document("text/x-shout", [Section(data.decode().upper())]))
    assert extractors.extract(b"hey", "text/x-shout").text == "HEY"
    assert not default_extractors().supports("text/x-shout")  # registries are separate


def test_chunks_stay_within_bounds_overlap_keep_spans_and_never_cross_sections() -> None:
    paragraphs = [" ".join(f"w{p}x{i}." if i % 9 == 8 else f"w{p}x{i}" for i in range(60)) for p in range(30)]
    document = Document("text/markdown", [Section("\n\n".join(paragraphs[:20]), title="One"),
                                          Section("\n\n".join(paragraphs[20:]), page=2, title="Two")])
    options = ChunkingOptions(max_tokens=100, overlap_tokens=20)
    chunks = chunk_document(document, options)
    text = document.text
    assert all(c.tokens <= 100 and text[c.char_start:c.char_end] == c.text for c in chunks)
    assert {c.section for c in chunks} == {"One", "Two"} and all(c.page == 2 for c in chunks if c.section == "Two")
    first_two = next(c for c in chunks if c.section == "Two")
    assert first_two.char_start == text.index(paragraphs[20])  # a new section starts a new chunk
    overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.char_start < a.char_end)
    assert overlapping >= len(chunks) // 2
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.char_start, chunk.char_end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace() and text[i:i + 2] != "\n\n")

    giant = Document("text/plain", [Section("x" * 5000)])  # one "word" longer than a chunk
    pieces = chunk_document(giant, options)
    assert "".join(p.text for p in pieces) == "x" * 5000 and all(p.tokens <= 100 for p in pieces)
    with pytest.raises(ValueError):
        ChunkingOptions(max_tokens=50, overlap_tokens=50)
    assert estimate_tokens("one two three") == 4 and estimate_tokens("a" * 40) == 10


def test_exact_vector_search_with_group_filters_and_rank_fusion() -> None:
    vectors = [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    matrix = VectorMatrix(["a", "b", "c", "d"], [to_blob(v) for v in vectors], 3, ["f1", "f1", "f2", "f2"])
    assert [i for i, _ in matrix.search([1.0, 0.1, 0.0], 2)] == ["a", "b"]
    assert [i for i, _ in matrix.search([1.0, 0.1, 0.0], 3, allowed_groups={"f2"})] == ["c", "d"]
    assert matrix.search([0.0, 0.0, 0.0], 2) == [] and VectorMatrix([], [], 3).search([1, 0, 0], 2) == []
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]])
    assert [i for i, _ in fused] == ["a", "c", "b"]


async def test_local_storage_keys_are_made_by_the_service(tmp_path: Path) -> None:
    storage = storage_from_url(None, tmp_path / "files")
    assert isinstance(storage, LocalStorage)
    await storage.put("ab12/cd34", b"bytes")
    assert await storage.get("ab12/cd34") == b"bytes"
    assert (tmp_path / "files").stat().st_mode & 0o777 == 0o700
    await storage.delete("ab12/cd34")
    await storage.delete("ab12/cd34")  # already gone: fine
    for bad in ("../etc/passwd", "/abs", "AB", "a/../b"):
        with pytest.raises(StorageError):
            await storage.put(bad, b"x")
    with pytest.raises(StorageError):
        await storage.get("ab12/ffff")
    with pytest.raises(ConfigurationError, match="not supported yet"):
        storage_from_url("s3://bucket/prefix", tmp_path)
    assert isinstance(storage_from_url(f"file://{tmp_path}/x", tmp_path), LocalStorage)
