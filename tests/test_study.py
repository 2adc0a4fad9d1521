"""The study preset (experiment=study) on the paper's own files in ../shared/seed.

Default suite: the synthesize stage imports the paper's SAI set and build_dataset writes the RAFT recipe's rows
from it, as the study's second run does; the rows are checked against the SAI CSV itself (distractors from other
papers of the training split only, the gold paragraph present or absent as configured, lineage, prompts that fit
the study's max length). Slow: `scripts/study.py --no-sweep` cut down to a few steps in a copy of the repository,
both recipes as DVC experiments, then the combined results with the report's headline and forest plot.
Skipped where the paper's files are absent (CI has them beside the repository).
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import SEED
from tests.test_pipeline import copy_tree, materialise_inputs, sh

pytestmark = pytest.mark.skipif(not (SEED / "SAI_dataset").exists(), reason="the paper's files are not in ../shared/seed")


def test_the_raft_recipe_on_the_papers_sai_set(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from pipeline import build_dataset, synthesize
    from sling.config import compose
    from tests.conftest import ROOT

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    study = ["experiment=study", f"data.seed_dir={SEED}", "dataset.raft.enabled=true"]
    synthesize.main(study)
    build_dataset.main(study)
    cfg = compose(study)
    sai = [json.loads(line) for line in (tmp_path / "data/synthetic/qa.jsonl").read_text().splitlines()]
    paragraph_doc = {r["paragraph_hash"]: r["doc_id"] for r in sai}
    paragraph_text = {r["paragraph_hash"]: r["paragraph"] for r in sai}
    split = json.loads((tmp_path / "data/datasets/domain/split.json").read_text())
    train = [json.loads(line) for line in (tmp_path / "data/datasets/domain/train.jsonl").read_text().splitlines()]
    assert len(train) > 300 and len({r["doc_id"] for r in train}) > 5
    without = [r for r in train if not r["raft"]["gold_in_context"]]
    assert abs(len(without) / len(train) - cfg.dataset.raft.no_gold_share) < 0.06  # the configured share, seeded
    for r in train:
        raft = r["raft"]
        assert set(raft) == {"gold_in_context", "gold_position", "distractor_hashes", "distractor_documents"}
        assert len(raft["distractor_hashes"]) == cfg.dataset.raft.distractors + (not raft["gold_in_context"])
        for h in raft["distractor_hashes"]:  # from other papers of the training split only
            assert paragraph_doc[h] != r["doc_id"] and paragraph_doc[h] in split["train"]
            assert paragraph_text[h] in r["prompt"]
        assert (paragraph_text[r["paragraph_hash"]] in r["prompt"]) == raft["gold_in_context"]
        if not raft["gold_in_context"]:
            assert r["response"] == cfg.dataset.raft.absent_answer
    metrics = json.loads((tmp_path / "metrics/dataset.json").read_text())
    assert metrics["raft"]["rows_without_gold"] == len(without) + sum(
        1 for line in (tmp_path / "data/datasets/domain/eval.jsonl").read_text().splitlines()
        if not json.loads(line)["raft"]["gold_in_context"])
    # Distractors are chunk-sized, so a RAFT row runs past the study's max length only where its own paragraph is
    # long (the paper recipe's row is long too): at most 1% of the rows.
    tok = AutoTokenizer.from_pretrained(ROOT / "models/pretrained", gguf_file=cfg.model.gguf_file)  # scripts/install.sh
    assert all(len(paragraph_text[h]) <= cfg.dataset.raft.max_distractor_chars
               for r in train for h in r["raft"]["distractor_hashes"])
    over = [r for r in train if len(tok(r["prompt"] + " " + r["response"])["input_ids"]) > cfg.train.max_length]
    assert len(over) <= 0.01 * len(train), len(over)


# Two steps of 4 rows per training stage (the study's 16-row steps of RAFT prompts up to 2,048 tokens took 3.5
# minutes a stage here, and the cut-down study 29.5 minutes alone on 2 cores).
CUT = ["train.general_epochs=0.002", "train.domain_epochs=0.011", "train.grad_accum=1", "train.eval_steps=2",
       "train.save_steps=2", "train.max_eval_rows=4", "rag.max_new_tokens=6", "eval.bootstrap=100"]


@pytest.mark.slow
@pytest.mark.integration
def test_the_study_script_cut_down(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    sh("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base", repo)
    materialise_inputs(repo)
    sets = " ".join(f"--set {s}" for s in CUT + [f"data.seed_dir={SEED}"])
    # one extra training seed per run; two pipeline runs, so twice one run's hang guard
    sh(f"python scripts/study.py --no-sweep --seeds 1 {sets}", repo, timeout=3600)
    out = repo / "results/study"
    study = json.loads((out / "study.json").read_text())
    assert set(study["runs"]) == {"paper", "raft"} and study["recipes"] == ["paper", "raft"]
    assert set(study["variants"]) == {"base", "general", "domain", "domain_raft"}
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"single", "joint"}
    for task, n in (("single", 11), ("joint", 25)):
        assert set(scores[task]["variants"]) == {"base", "general", "domain", "domain_raft"}
        assert scores[task]["questions"] == n
        assert "domain_raft-base" in scores[task]["paired"]
        # every tuned variant pools its run's two seeds (42 and 1); the base has none
        for variant in ("general", "domain", "domain_raft"):
            assert set(scores[task]["variants"][variant]["per_seed"]) == {"42", "1"}
            assert len(scores[task]["paired"][f"{variant}-base"]["rescaled"]["per_seed"]) == 2
        assert "per_seed" not in scores[task]["variants"]["base"]
        for variant in study["variants"]:
            assert len((out / f"answers/{variant}_{task}.jsonl").read_text().splitlines()) == n
    assert all(r["extra_seeds"] == [1] for r in study["runs"].values())
    raft_data = json.loads((out / "runs/raft/metrics/dataset.json").read_text())
    assert raft_data["raft"]["rows_without_gold"] > 0
    assert "raft" not in json.loads((out / "runs/paper/metrics/dataset.json").read_text())
    page = (out / "report.html").read_text()
    assert "<h2>Headline</h2>" in page and "Tuned variant minus base" in page  # the headline and the forest plot
    assert "domain_raft" in page[page.index("<h2>Headline</h2>"):page.index("<h2>The benchmark</h2>")]
    shown = sh("dvc exp show --json", repo).stdout
    assert all(r["experiment"] in shown for r in study["runs"].values())
    section = sh("python scripts/update_readme.py --study-table", repo).stdout
    assert "domain_raft" in section and "paper: saiphipaca" in section
