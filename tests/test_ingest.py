"""Ingestion on real files built here: good PDF/Markdown/text/HTML, and every bad-input case.

The PDFs are rendered with fpdf2 (running header, page-number footer, a references section), encrypted
with pypdf, truncated, emptied, or made of one image with no text layer. Every stage run is the real
`pipeline.ingest.main` with unstructured, writing into a tmp work dir and a tmp MLflow database.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from sling.documents.render import HEADER, make_pdf, section_text
from tests.conftest import mlflow_db

SEED = Path(__file__).resolve().parent.parent.parent / "shared" / "seed"

BAD = {  # file -> the words its skip reason must contain
    "encrypted.pdf": "encrypted PDF",
    "truncated.pdf": "corrupt or unreadable PDF",
    "empty.pdf": "empty file (0 bytes)",
    "scanned.pdf": "no text layer",
    "rule.md": "unstructured returned no elements",
}


def make_bad_files(folder: Path, good_pdf: Path) -> None:
    from fpdf import FPDF
    from PIL import Image
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(good_pdf))
    writer.encrypt("secret", algorithm="AES-128")
    writer.write(str(folder / "encrypted.pdf"))
    data = good_pdf.read_bytes()
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 3])
    (folder / "empty.pdf").write_bytes(b"")
    Image.new("RGB", (400, 200), "white").save(folder / "scan.png")
    scan = FPDF()
    scan.add_page()
    scan.image(str(folder / "scan.png"), x=10, y=10, w=150)
    (folder / "scanned.pdf").write_bytes(bytes(scan.output()))
    (folder / "scan.png").unlink()
    (folder / "rule.md").write_text("---\n")  # text, but unstructured finds no element in a lone horizontal rule


LONG = ("Low-rank adaptation freezes the pretrained weights and learns two small matrices per adapted layer, "
        "so the number of trainable parameters drops by orders of magnitude while quality stays close to full "
        "fine-tuning.")


def make_text_files(folder: Path) -> None:
    (folder / "notes.md").write_text(f"# Adapters\n\n{LONG}\n\n## Retrieval\n\nRetrieval-augmented generation "
                                     "puts the passages most similar to the question into the prompt, so the model "
                                     "answers from evidence it was never trained on.\n")
    (folder / "notes.txt").write_text("Quantization\n\nFour-bit NormalFloat quantization stores the frozen base "
                                      "model in a quarter of its half-precision size, and paged optimizers keep "
                                      "memory spikes from ending a training run on a small GPU.\n")
    (folder / "page.html").write_text("<html><head><title>ignored title</title><script>var tracking = 1;</script>"
                                      "</head><body><h1>Evaluation</h1><p>Embedding cosine between an answer and a "
                                      "reference crowds every model between 0.85 and 0.95, so a shuffled baseline "
                                      "is needed before any two models can be told apart.</p></body></html>")


def run_ingest(corpus: Path, work: Path, *overrides: str) -> Path:
    """The real stage in `work`, with its own MLflow database (module fixtures run outside conftest's)."""
    from pipeline import ingest

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLING_WORKDIR", str(work))
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_db(work / "mlflow.db"))
        ingest.main([f"data.corpus_dir={corpus}", *overrides])
    return work


def read(work: Path) -> tuple[list[dict], dict, dict]:
    rows = [json.loads(line) for line in (work / "data/ingested/paragraphs.jsonl").read_text().splitlines()]
    return rows, json.loads((work / "data/ingested/manifest.json").read_text()), \
        json.loads((work / "metrics/ingest.json").read_text())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    make_pdf(folder / "paper.pdf")
    shutil.copy(folder / "paper.pdf", folder / "paper_copy.pdf")  # same content, another name
    make_bad_files(folder, folder / "paper.pdf")
    make_text_files(folder)
    return folder


@pytest.fixture(scope="module")
def ingest_work(corpus, tmp_path_factory) -> Path:
    return run_ingest(corpus, tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def ingested(ingest_work):
    return read(ingest_work)


def test_bad_documents_are_skipped_by_name_and_counted(ingested):
    rows, manifest, metrics = ingested
    status = {d["document"]: d for d in manifest["documents"]}
    for name, reason in BAD.items():
        assert status[name]["status"] == "skipped", name
        assert reason in status[name]["reason"], (name, status[name]["reason"])
    assert metrics["skipped"] == len(BAD)
    assert metrics["skipped_by_reason"] == {"corrupt": 1, "empty": 1, "encrypted": 1, "no_elements": 1,
                                            "ocr_no_text": 1}  # OCR ran on the blank scan and found nothing
    # The other documents still went through.
    assert {r["document"] for r in rows} == {"paper.pdf", "notes.md", "notes.txt", "page.html"}
    assert metrics["ingested"] == 4 and metrics["documents"] == 10


def test_same_file_twice_is_ingested_once(ingested):
    rows, manifest, metrics = ingested
    copy = next(d for d in manifest["documents"] if d["document"] == "paper_copy.pdf")
    assert copy["status"] == "duplicate" and copy["duplicate_of"] == "paper.pdf"
    assert metrics["duplicates"] == 1
    assert not any(r["document"] == "paper_copy.pdf" for r in rows)
    texts = [r["text"] for r in rows]
    assert len(texts) == len(set(texts))


def test_pdf_headers_footers_page_numbers_and_references_dropped_pages_kept(ingested):
    rows, _, _ = ingested
    pdf = [r for r in rows if r["document"] == "paper.pdf"]
    joined = " ".join(r["text"] for r in pdf)
    assert HEADER not in joined
    assert not any(r["text"].strip().isdigit() for r in pdf)
    assert "A cited work" not in joined and "References" not in joined
    assert {r["page"] for r in pdf} == {1, 2}  # twelve sections over two pages; references on page 3 cut
    # Every section's text survives whole, including short last lines that unstructured types as titles.
    for i in range(1, 13):
        assert section_text(i) in joined, i
    assert all(r["paragraph_hash"] and r["doc_id"] and r["para_num"] >= 1 for r in pdf)


def test_references_kept_when_not_configured(corpus, tmp_path):
    single = tmp_path / "one"
    single.mkdir()
    shutil.copy(corpus / "paper.pdf", single / "paper.pdf")
    rows, _, _ = read(run_ingest(single, tmp_path / "work", "ingest.drop_references=false"))
    assert any("A cited work number 3" in r["text"] and r["page"] == 3 for r in rows)


def test_markdown_text_and_html(ingested):
    rows, _, metrics = ingested
    by_doc = {}
    for r in rows:
        by_doc.setdefault(r["document"], []).append(r["text"])
    assert LONG in by_doc["notes.md"]
    assert any("Four-bit NormalFloat" in t for t in by_doc["notes.txt"])
    assert any("shuffled baseline" in t for t in by_doc["page.html"])
    assert not any("tracking" in t or "ignored title" in t for t in by_doc["page.html"])
    for name in ("paper.pdf", "notes.md", "notes.txt", "page.html"):
        assert 0.8 <= metrics["coverage_by_document"][name] <= 1.0, name
        assert 0.8 <= metrics["tfidf_cosine_by_document"][name] <= 1.0, name


def test_extraction_check_sees_lost_text(corpus, tmp_path):
    """The coverage check must drop when text is lost: cut most paragraphs and compare."""
    from sling.documents.read import coverage, raw_text, tfidf_cosine

    pages = raw_text(corpus / "paper.pdf")
    full = [{"text": " ".join(pages)}]
    part = [{"text": section_text(1)}]
    assert coverage(pages, full) == 1.0 and tfidf_cosine(pages, full) == 1.0
    assert coverage(pages, part) < 0.2 and tfidf_cosine(pages, part) < 0.95


@pytest.mark.parametrize("bad", sorted(BAD))
def test_on_error_fail_names_the_file(corpus, tmp_path, bad):
    from sling.documents.read import DocumentError

    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(corpus / "notes.md", folder / "notes.md")
    shutil.copy(corpus / bad, folder / bad)
    with pytest.raises(DocumentError, match=re.escape(BAD[bad])) as err:
        run_ingest(folder, tmp_path / "work", "ingest.on_error=fail", "ingest.workers=1")  # inline: no worker start-up
    assert str(folder / bad) in str(err.value) and "ingest.on_error=skip" in str(err.value)
    assert not (tmp_path / "work/data/ingested/paragraphs.jsonl").exists()


def test_skip_is_logged_with_the_file_name(corpus, tmp_path, caplog):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(corpus / "notes.md", folder / "notes.md")
    shutil.copy(corpus / "rule.md", folder / "rule.md")
    with caplog.at_level(logging.WARNING, logger="ingest"):
        rows, _, metrics = read(run_ingest(folder, tmp_path / "work"))
    assert metrics["skipped"] == 1 and {r["document"] for r in rows} == {"notes.md"}
    assert any(str(folder / "rule.md") in m and "no elements" in m for m in caplog.messages)


def test_only_bad_documents_fail_loudly(corpus, tmp_path):
    from sling.documents.read import DocumentError

    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(corpus / "empty.pdf", folder / "empty.pdf")
    with pytest.raises(DocumentError, match="no paragraphs from any of the 1 documents"):
        run_ingest(folder, tmp_path / "work")


def test_rerun_is_byte_identical(corpus, ingest_work, tmp_path):
    second = run_ingest(corpus, tmp_path / "again")
    for rel in ("data/ingested/paragraphs.jsonl", "data/ingested/manifest.json", "metrics/ingest.json"):
        assert (second / rel).read_bytes() == (ingest_work / rel).read_bytes(), rel


JOINT = SEED / "benchmark_data" / "joint_paper" / "joint_paper.pdf"


@pytest.mark.slow
@pytest.mark.skipif(not JOINT.exists(), reason=f"{JOINT} not on this machine")
def test_joint_paper_passes_the_complexity_trap(cfg_factory):
    """The 68-page joint paper has a page that unstructured's default "too complex" check rejects (and then
    returns nothing offline); with ingest.max_graphics_ops it yields paragraphs from almost every page."""
    from sling.documents.read import ingest_document

    paragraphs, stats = ingest_document(JOINT, cfg_factory().ingest)
    assert stats["pages"] == 68
    assert len(paragraphs) > 300
    # It joins several papers: cutting the first one's references must not cut the papers after it.
    assert len({p["page"] for p in paragraphs}) > 55
    assert stats["coverage"] > 0.8
