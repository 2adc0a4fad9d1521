"""A damaged PDF keeps its intact pages: a real multi-page PDF, laid out page by page (qpdf's QDF form) and cut
short, goes through the real ingest stage as a partial ingest naming the pages it lost."""
from __future__ import annotations

from pathlib import Path

from tests.test_ingest import make_pdf, read, run_ingest, section_text


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
