"""Render a text or Markdown file into a real PDF (a running header, titles in bold, page-number footers, which
ingestion must drop). By default, corpus/sample/experiment_tracking.txt into the sample corpus's PDF:

    python scripts/make_sample_pdf.py && dvc commit data.dvc          # the sample's PDF (corpus/ is in data.dvc)
    python scripts/make_sample_pdf.py notes.md notes.pdf --header "Notes"   # any file (the pipeline test does this)
"""
import argparse
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "corpus/sample/experiment_tracking.txt"
OUT = ROOT / "corpus/sample/documents/experiment_tracking.pdf"


def render(src: Path, out: Path, header: str) -> int:
    """Blank-line-separated blocks; a block starting with `#` is a title. Returns the page count."""

    class Doc(FPDF):
        def header(self):
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 8, header, align="C")
            self.ln(12)

        def footer(self):
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 10, f"Page {self.page_no()}", align="C")

    pdf = Doc()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))  # fixed: byte-identical output
    pdf.add_page()
    for block in filter(None, (b.strip() for b in src.read_text().split("\n\n"))):
        title = block.startswith("#")
        pdf.set_font("Helvetica", "B" if title else "", 14 if title else 11)
        pdf.multi_cell(0, 8 if title else 6, block.lstrip("# "), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    out.write_bytes(bytes(pdf.output()))
    return pdf.page_no()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", nargs="?", type=Path, default=SRC)
    ap.add_argument("out", nargs="?", type=Path, default=OUT)
    ap.add_argument("--header", default="sling sample corpus - experiment tracking")
    args = ap.parse_args()
    pages = render(args.src, args.out, args.header)
    print(f"wrote {args.out} ({pages} pages)")


if __name__ == "__main__":
    main()
