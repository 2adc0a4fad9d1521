"""Clean text out of real PDFs: a PDF typeset here with ligature glyphs, words hyphenated at line ends and a page of
formulas and numbers goes through the real ingest stage; the paper's own PDFs (when ../shared/seed is present)
come out with no ligature left and their text-quality figures in metrics/ingest.json."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sling.documents.clean import join_broken, kind, vocabulary
from tests.test_ingest import SEED, read, run_ingest

PROSE = [
    "The beneﬁts of eﬃcient ﬁne-tuning are signiﬁcant: a small model with a low-rank adapter can be trained on one "
    "consumer machine, and the ﬂow of gradients stays within the adapter, which oﬀers a large saving in memory.",
    "When the training run was interrupted, the trainer re-\nturned to the last checkpoint and continued with the "
    "same learning rate schedule, so the loss curve stayed smooth across the restart and the model was visual-\n"
    "ized in the report.",
    "Such state-of-the-art results need careful evaluation: a state-of-the-\nart score on one benchmark says little "
    "about another, so every number is reported with its interval and its controls.",
]
FORMULA = "L(θ) = −∑ᵢ log p(yᵢ | xᵢ; θ) + λ‖θ‖² ,  ∇L = 0 ⇒ θ* = argmin L(θ) ;  α = 0.5 , β = 0.9 , γ = 1e-4 ."
TABLE = "0.912 0.884 0.931 12.4 15.2 17.9 0.455 0.512 0.498 33.1 34.7 36.2 0.871 0.902 0.915 10.1 11.3 12.8"


def font() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"  # has the ligature glyphs


def make_typeset_pdf(path: Path) -> None:
    from fpdf import FPDF

    class Doc(FPDF):
        def header(self):  # a running header, as journals print one, so that the body starts below it
            self.set_font("DejaVu", size=8)
            self.cell(0, 8, "Proceedings of typeset tests", align="C")
            self.ln(12)

    pdf = Doc()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))
    pdf.add_font("DejaVu", fname=str(font()))
    pdf.add_page()
    pdf.set_font("DejaVu", size=11)
    for block in PROSE + [FORMULA, TABLE]:
        pdf.multi_cell(0, 6, block, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    path.write_bytes(bytes(pdf.output()))


@pytest.fixture(scope="module")
def typeset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("typeset")
    make_typeset_pdf(folder / "typeset.pdf")
    return folder


def test_ligatures_hyphenation_and_non_prose_on_a_typeset_pdf(typeset, tmp_path):
    rows, manifest, metrics = read(run_ingest(typeset, tmp_path / "prose"))
    text = " ".join(r["text"] for r in rows)
    assert not any("\ufb00" <= c <= "\ufb06" for c in text)
    assert "benefits of efficient fine-tuning" in text and "offers a large saving" in text
    assert "returned to the last checkpoint" in text and "re- turned" not in text and "visualized" in text
    assert "a state-of-the-art score" in text  # a compound the document spells with its hyphens stays one
    assert "argmin" not in text and "0.912" not in text  # the formula and the table are not prose: dropped
    doc = metrics["text_quality_by_document"]["typeset.pdf"]
    assert doc["ligature_share"] > 0 and doc["hyphenation_share"] > 0 and doc["non_prose_share"] > 0
    assert metrics["dropped_non_prose"] == 2 and metrics["non_prose"]["table"] == 1
    entry = next(d for d in manifest["documents"] if d["document"] == "typeset.pdf")
    assert entry["ligature_share"] == doc["ligature_share"]

    rows, _, metrics = read(run_ingest(typeset, tmp_path / "all", "ingest.keep=all"))
    assert Counter(r.get("kind") for r in rows)["table"] == 1 and metrics["dropped_non_prose"] == 0
    assert any("argmin" in r["text"] and r["kind"] == "formula" for r in rows)


def test_join_broken_follows_the_documents_own_words():
    vocab = vocabulary(["The model returned. A self-supervised loss. The data set was large."])
    assert join_broken("it re- turned", vocab) == "it returned"
    assert join_broken("a self- supervised loss", vocab) == "a self-supervised loss"
    assert join_broken("the data- set", vocab) == "the data-set"  # both halves are words of the document
    assert join_broken("visual- ized", vocab) == "visualized"


def test_kinds_of_non_prose():
    assert kind(PROSE[0]) is None and kind(PROSE[2]) is None
    assert kind(TABLE) == "table" and kind(FORMULA) == "formula"
    assert kind("AMABILE, T. M. (1983). The social psychology of creativity. New York: Springer. BAER, J. (1993). "
                "Creativity and divergent thinking. Hillsdale, NJ: Erlbaum.") == "references"
    assert kind("Gough (1992) looked for correlations between assessments of creativity (Helson, 1983).") is None
    assert kind("def f(x): return {x: x}; for k in d: print(k); g(); h();") == "code"


@pytest.mark.parametrize("name", ["single_paper", pytest.param("joint_paper", marks=pytest.mark.slow)])  # the longer one: 40 s
def test_the_papers_pdfs_come_out_clean(name, tmp_path):
    pdf = SEED / "benchmark_data" / name / f"{name}.pdf"
    if not pdf.exists():
        pytest.skip(f"{pdf} not on this machine")
    rows, _, metrics = read(run_ingest(pdf, tmp_path))
    assert rows and not any("\ufb00" <= c <= "\ufb06" for r in rows for c in r["text"])
    assert not any("(cid:" in r["text"] for r in rows)
    figures = metrics["text_quality_by_document"][f"{name}.pdf"]
    assert {"ligature_share", "hyphenation_share", "glyph_garbage_share", "non_prose_share"} <= set(figures)
    assert figures["ligature_share_after"] == figures["glyph_garbage_share_after"] == 0.0
    print(name, json.dumps(figures, sort_keys=True))  # the before/after shares (pytest -s shows them)
