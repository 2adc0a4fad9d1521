"""Render corpus/sample/experiment_tracking.txt into the sample corpus's PDF (a real PDF
with running headers, footers and page numbers, which ingestion must drop).

    python scripts/make_sample_pdf.py
"""
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "corpus/sample/experiment_tracking.txt"
OUT = ROOT / "corpus/sample/documents/experiment_tracking.pdf"


class Doc(FPDF):
    def header(self):
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 8, "sling sample corpus - experiment tracking", align="C")
        self.ln(12)

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def main() -> None:
    blocks = [b.strip() for b in SRC.read_text().split("\n\n") if b.strip()]
    pdf = Doc()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))  # fixed: byte-identical output
    pdf.add_page()
    for block in blocks:
        if block.startswith("# "):
            pdf.set_font("Helvetica", "B", 14)
            pdf.multi_cell(0, 8, block[2:])
        else:
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 6, block)
        pdf.ln(4)
    OUT.write_bytes(bytes(pdf.output()))
    print(f"wrote {OUT.relative_to(ROOT)} ({pdf.page_no()} pages)")


if __name__ == "__main__":
    main()
