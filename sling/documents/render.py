"""Documents rendered here, byte for byte the same on every run, for checking ingestion: PDFs with a running header,
page-number footers, titled sections of known sentences and a references list, all of which ingestion must sort out
(the header, footers and references dropped, the sections kept), and any text file as a PDF (the sample corpus's).
Used by the ingest tests, bench/bench_ingest.py and scripts/make_sample_pdf.py; no stage imports it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

HEADER = "Journal of Test Documents, vol. 3"  # the running header on every page
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon".split()


def paged_pdf(header: str, footer: str):
    """An fpdf document with `header` on every page, `footer` (with `{page}`, the page number) at the bottom, and a fixed
    creation date, so the same content gives the same bytes."""
    from fpdf import FPDF

    class Doc(FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 8, header, align="C")
            self.ln(12)

        def footer(self):
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 10, footer.format(page=self.page_no()), align="C")

    pdf = Doc()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))
    return pdf


def render_text(src: Path, out: Path, header: str) -> int:
    """A text or Markdown file as a PDF: blank-line-separated blocks, a block starting with `#` a bold title, the
    running `header` and `Page N` footers. Returns the page count."""
    pdf = paged_pdf(header, "Page {page}")
    pdf.add_page()
    for block in filter(None, (b.strip() for b in src.read_text().split("\n\n"))):
        title = block.startswith("#")
        pdf.set_font("Helvetica", "B" if title else "", 14 if title else 11)
        pdf.multi_cell(0, 8 if title else 6, block.lstrip("# "), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    out.write_bytes(bytes(pdf.output()))
    return pdf.page_no()


def section_text(i: int) -> str:
    """The body of section `i`: eight sentences, distinct per section."""
    return " ".join(f"Sentence {j} of section {i} talks about {WORDS[(i + j) % 20]} and {WORDS[(i * 3 + j) % 20]} "
                    "in detail." for j in range(8))


def make_pdf(path: Path, sections: int = 12, references: bool = True) -> None:
    """Three pages (at the default 12 sections) with a running header, page-number footers, titled sections and a
    references list. Deterministic: the same arguments give the same bytes, distinct ones distinct files."""
    pdf = paged_pdf(HEADER, "{page}")
    pdf.add_page()
    for i in range(1, sections + 1):
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, f"Section {i}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 6, section_text(i), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    if references:
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, "References", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for k in range(1, 6):
            pdf.multi_cell(0, 6, f"[{k}] A. Author. A cited work number {k} with a long enough title to be a "
                                 "paragraph of its own. Publisher, 2020.", new_x="LMARGIN", new_y="NEXT")
    path.write_bytes(bytes(pdf.output()))
