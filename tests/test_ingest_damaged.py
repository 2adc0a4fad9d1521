"""Harder documents through the real ingest stage: a damaged PDF keeps its intact pages (a real multi-page PDF,
laid out page by page in qpdf's QDF form and cut short, is a partial ingest naming the pages it lost), and a scanned
PDF (text rendered to an image) and a PDF whose text layer is illegible (its fonts map glyphs to dingbats) are read
by OCR, their words recovered, or skipped with ingest.ocr=off."""
from __future__ import annotations

from pathlib import Path

import pytest

from sling.documents.render import make_pdf, section_text
from tests.test_ingest import read, run_ingest


def make_truncated_pdf(folder: Path) -> int:
    """Six pages of sections, written in page order, then cut at 60% of the bytes; returns the page count."""
    import pikepdf

    good = folder / "whole.pdf"
    make_pdf(good, sections=30, references=False)
    with pikepdf.open(good) as pdf:
        pages = len(pdf.pages)
        pdf.save(folder / "laid_out.pdf", qdf=True)
    data = (folder / "laid_out.pdf").read_bytes()
    (folder / "cut" / "damaged.pdf").parent.mkdir()
    (folder / "cut" / "damaged.pdf").write_bytes(data[: int(len(data) * 0.6)])
    return pages


def test_a_truncated_pdf_is_a_partial_ingest_that_names_the_pages_lost(tmp_path):
    pages = make_truncated_pdf(tmp_path)
    rows, manifest, metrics = read(run_ingest(tmp_path / "cut", tmp_path / "work"))
    (entry,) = manifest["documents"]
    assert entry["status"] == "partial" and entry["repaired"] is True
    lost = entry["pages_lost"]
    assert lost and lost == list(range(lost[0], pages + 1)) and lost[0] > 1  # the tail is gone, the head is kept
    assert metrics["ingested"] == 1 and metrics["partial"] == {"damaged.pdf": lost}
    text = " ".join(r["text"] for r in rows)
    assert section_text(1)[:60] in text  # the first page's words survive
    assert all(r["page"] < lost[0] for r in rows)


SCANNED = ("Optical character recognition reads the words of a scanned page. The adapter was trained for three "
           "epochs on the domain questions, and its answers were checked against the retrieved paragraphs.")


def make_scanned_pdf(path: Path) -> None:
    """A page of text rendered to an image (as a scanner would give it) and saved as an image-only PDF."""
    import textwrap

    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), 40)
    page = Image.new("RGB", (2480, 3508), "white")  # A4 at 300 dpi
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(textwrap.wrap(SCANNED, 60)):
        draw.text((200, 300 + i * 70), line, fill="black", font=font)
    page.save(path, "PDF", resolution=300)


def test_a_scanned_pdf_is_read_by_ocr_and_skipped_with_ocr_off(tmp_path):
    (tmp_path / "scans").mkdir()
    make_scanned_pdf(tmp_path / "scans" / "scan.pdf")
    rows, manifest, _ = read(run_ingest(tmp_path / "scans", tmp_path / "ocr"))
    assert manifest["documents"][0]["ocr"] is True
    words = " ".join(r["text"] for r in rows).lower().split()
    expected = SCANNED.lower().replace(".", "").replace(",", "").split()
    recovered = sum(w.strip(".,") in words for w in expected) / len(expected)
    assert recovered >= 0.9, (recovered, words)

    from sling.documents.read import DocumentError

    with pytest.raises(DocumentError, match="no text layer.*ingest.ocr=auto reads it by OCR"):
        run_ingest(tmp_path / "scans", tmp_path / "off", "ingest.ocr=off", "ingest.on_error=fail")


def garble_text_layer(src: Path, dst: Path) -> None:
    """The PDF with the same pages, but every font's ToUnicode map sending each glyph to a dingbat: the page still
    shows the words, its text layer holds symbols (as in real PDFs whose Type 3 fonts carry a broken map)."""
    import pikepdf

    codes = "".join(f"<{c:02X}> <{0x2700 + c:04X}>\n" for c in range(0x20, 0x7F))
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Garbled def /CMapType 2 def\n"
            "1 begincodespacerange <00> <FF> endcodespacerange\n"
            f"{0x7F - 0x20} beginbfchar\n{codes}endbfchar\n"
            "endcmap CMapName currentdict /CMap defineresource pop end end\n")
    with pikepdf.open(src) as pdf:
        for page in pdf.pages:
            for _, font in page.Resources.Font.items():
                font.ToUnicode = pdf.make_stream(cmap.encode())
        pdf.save(dst)


def test_a_pdf_whose_text_layer_is_illegible_is_read_by_ocr(tmp_path):
    from pypdf import PdfReader

    from sling.documents.read import DocumentError, symbol_share

    make_pdf(tmp_path / "plain.pdf", sections=2, references=False)
    (tmp_path / "docs").mkdir()
    garble_text_layer(tmp_path / "plain.pdf", tmp_path / "docs" / "garbled.pdf")
    layer = "".join(p.extract_text() for p in PdfReader(str(tmp_path / "docs" / "garbled.pdf")).pages)
    assert symbol_share(layer) > 0.5 and section_text(1)[:20] not in layer  # the text layer really is garbage
    rows, manifest, _ = read(run_ingest(tmp_path / "docs", tmp_path / "ocr"))
    (entry,) = manifest["documents"]
    assert entry["ocr"] is True and entry["ocr_reason"] == "illegible_text_layer"
    words = " ".join(r["text"] for r in rows).lower().split()
    expected = [w.strip(".,;:") for w in section_text(1).lower().split()]
    assert sum(w in words for w in expected) / len(expected) >= 0.9
    with pytest.raises(DocumentError, match="text layer is illegible.*ingest.ocr=auto reads it by OCR"):
        run_ingest(tmp_path / "docs", tmp_path / "off", "ingest.ocr=off", "ingest.on_error=fail")
