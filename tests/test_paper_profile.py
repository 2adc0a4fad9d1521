"""Integration: `data=paper` end to end offline, on the paper's own files in ../shared/seed.

The paper's recipe on SmolLM2 (`experiment=paper_offline`) with step counts and answer lengths cut so that
the run takes minutes: the paper's Alpaca rows and SAI set train the two adapters, its two benchmark PDFs are
indexed, every variant answers the single-paper (11) and joint-paper (25) questions, the gpt_response column
is the reference, and the report puts the paper's own answers, rescored, beside ours. Skipped where the
paper's files are absent (CI has them beside the repository).
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import SEED
from tests.test_pipeline import copy_tree, materialise_inputs, sh

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not (SEED / "paper_results").exists(), reason="the paper's files are not in ../shared/seed")]

OVERRIDES = ["experiment=paper_offline", f"data.seed_dir={SEED}", "data.general_limit=24", "train.general_max_steps=2",
             "train.domain_max_steps=2", "train.eval_steps=2", "train.save_steps=2", "train.max_length=256",
             "rag.max_new_tokens=6", "rag.dtype=bfloat16", "eval.bootstrap=100"]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    repo = tmp_path_factory.mktemp("paper") / "repo"
    repo.mkdir()
    copy_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    sh("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base", repo)
    materialise_inputs(repo)
    sh(f"python -m pipeline.compose {' '.join(OVERRIDES)}", repo)
    out = sh("dvc repro", repo)
    return repo, out.stdout


def test_every_variant_answers_both_paper_tasks(paper_run):
    repo, _ = paper_run
    for variant in ("base", "general", "domain"):
        for task, n in (("single", 11), ("joint", 25)):
            rows = (repo / f"results/students/{variant}_{task}.jsonl").read_text().splitlines()
            assert len(rows) == n, (variant, task)
    reference = [json.loads(line) for line in (repo / "results/reference/single.jsonl").read_text().splitlines()]
    assert all(r["answer"] for r in reference) and len(reference) == 11  # the paper's gpt_response column
    scores = json.loads((repo / "metrics/scores.json").read_text())
    assert (scores["single"]["questions"], scores["joint"]["questions"]) == (11, 25)
    assert set(scores["joint"]["variants"]) == {"base", "general", "domain"}


def test_adapters_trained_on_the_paper_data(paper_run):
    repo, _ = paper_run
    general = json.loads((repo / "metrics/general_data.json").read_text())
    domain = json.loads((repo / "metrics/synthesize.json").read_text())
    assert general["rows"] == 24  # data.general_limit rows of the paper's Alpaca subset
    assert domain["rows"] > 100 and domain["calls"] == 0  # the paper's SAI CSV, imported, no teacher called
    for stage in ("general", "domain"):
        assert (repo / f"models/adapters/{stage}/adapter_model.safetensors").exists()


def test_report_sets_the_papers_rescored_table_beside_ours(paper_run):
    repo, _ = paper_run
    published = json.loads((repo / "metrics/paper_rescored.json").read_text())
    assert set(published["single"]["models"]) == {"phi-1_5", "phipaca", "saiphipaca"}
    page = (repo / "reports/report.html").read_text()
    assert "The published answers and ours, side by side" in page
    side = page[page.index("side by side"):page.index("Paired differences")]
    for name in ("phi-1_5", "phipaca", "saiphipaca", "ours (SmolLM2-135M-Instruct)"):
        assert name in side, name
