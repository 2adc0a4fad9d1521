"""Render a text or Markdown file into a real PDF (a running header, titles in bold, page-number footers, which
ingestion must drop). By default, corpus/sample/experiment_tracking.txt into the sample corpus's PDF:

    python scripts/make_sample_pdf.py && dvc commit data.dvc          # the sample's PDF (corpus/ is in data.dvc)
    python scripts/make_sample_pdf.py notes.md notes.pdf --header "Notes"   # any file (the pipeline test does this)
"""
import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from sling.documents.render import render_text  # the same renderer the ingest tests use

SRC = ROOT / "corpus/sample/experiment_tracking.txt"
OUT = ROOT / "corpus/sample/documents/experiment_tracking.pdf"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", nargs="?", type=Path, default=SRC)
    ap.add_argument("out", nargs="?", type=Path, default=OUT)
    ap.add_argument("--header", default="sling sample corpus - experiment tracking")
    args = ap.parse_args()
    pages = render_text(args.src, args.out, args.header)
    print(f"wrote {args.out} ({pages} pages)")


if __name__ == "__main__":
    main()
