"""Test documents made on the spot: PDFs (fpdf2; encrypted and image-only ones too), DOCX, HTML, Markdown."""

from __future__ import annotations

import io


def pdf(pages: list[str], *, password: str | None = None) -> bytes:
    from fpdf import FPDF

    document = FPDF()
    document.set_font("helvetica", size=11)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 6, text)
    if password is not None:
        from fpdf.enums import EncryptionMethod

        document.set_encryption(owner_password="owner-" + password, user_password=password,
                                encryption_method=EncryptionMethod.AES_128)
    return bytes(document.output())


def image_only_pdf() -> bytes:
    """A one-page PDF whose page is a picture (a scan): no text layer."""
    from fpdf import FPDF
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(picture, format="PNG")
    picture.seek(0)
    document = FPDF()
    document.add_page()
    document.image(picture, x=10, y=10, w=100)
    return bytes(document.output())


def docx(paragraphs: list[tuple[str, str]], table: list[list[str]] | None = None) -> bytes:
    """``paragraphs``: (style, text) pairs, style ``Heading 1`` or ``Normal``."""
    import docx as python_docx

    document = python_docx.Document()
    for style, text in paragraphs:
        if style.startswith("Heading"):
            document.add_heading(text, level=int(style.split()[-1]))
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
