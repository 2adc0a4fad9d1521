"""Stage benchmark: the document split, the benchmark's tasks and their questions with reference answers.

    python -m pipeline.benchmark                                  # reads params.yaml
    python -m pipeline.benchmark data=documents data.corpus_dir=~/papers benchmark.questions_per_document=12

Two modes, chosen by `data.tasks`:

- Named tasks (`data=sample`, `data=paper`): each task names its documents and a question file; the questions are
  normalised into `data/benchmark/questions/<task>.jsonl` (id, question, source paragraph, document, reference).
  Nothing is held out of training (the split says so, and the leakage stage counts the overlap).
- Generated (`data.tasks: {}`, `data=documents`): the ingested documents are split, seeded and by document, into
  training and benchmark documents (`data.split`: a share, or named documents; near-copies stay together). The
  teacher writes one question from each of `benchmark.questions_per_document` sampled paragraphs of every benchmark
  document (its own prompt version), then answers it from that paragraph alone: the oracle reference. The training
  set's quality filters apply, with counts, and a document they leave short gets more paragraphs. Tasks: one per benchmark document and one over all of them (`benchmark.joint_task`).

Outputs: `data/split/documents.json` (the split manifest, which synthesize reads), `data/benchmark/tasks.json`
(task -> documents with their hashes, question file, languages), the question files, and
`data/benchmark/collections.json` (what the index builds: a collection per task the split allows, with its documents'
hashes, decided by the split and never by the questions, so that the index follows a change to a document and not
a change to the questions); counts in `metrics/benchmark.json`.
"""
from __future__ import annotations

from omegaconf import OmegaConf

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.data.benchmark import (
    card_samples,
    generated_tasks,
    log,
    named_tasks,
    task_languages,
)
from sling.io import provenance, sha256_file, write_json, write_jsonl
from sling.paths import (
    BENCHMARK_METRICS,
    COLLECTIONS,
    QUESTIONS_DIR,
    QUESTIONS_PROVENANCE,
    SPLIT,
    TASKS,
    questions_path,
)
from sling.tracking.runs import log_artifact, log_dataset, log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("benchmark", cfg):
        split, tasks, collections, stats = (generated_tasks(cfg) if not cfg.data.tasks
                                            else named_tasks(cfg.data, cfg.ingest))
        qdir = resolve_path(QUESTIONS_DIR)
        for old in qdir.glob("*.jsonl") if qdir.is_dir() else []:
            if old.stem not in tasks:
                old.unlink()  # a task that no longer exists
        # each document hashed once: the task list and the index's collections both carry the hashes (every task's
        # documents are a collection's)
        hashes = {d: sha256_file(resolve_path(d)) for docs in collections.values() for d in docs}
        listing, samples = {}, {}
        for name, t in tasks.items():
            rows = t.pop("rows", [])
            write_jsonl(resolve_path(questions_path(name)), rows)
            listing[name] = t | {"questions": questions_path(name), "languages": t.get("languages") or task_languages(rows),
                                 "document_sha256": {d: hashes[d] for d in t["documents"]}}
            stats.setdefault("tasks", {})[name] = len(rows)
            samples[name] = card_samples(cfg.seed, rows)
        stats["card_samples"] = samples
        # Each output's provenance names only what shapes it, so that a benchmark-side change (say, more questions)
        # leaves the split and the collections byte-identical and DVC re-runs neither training nor indexing.
        split_conf = {"seed": cfg.seed, "split": OmegaConf.to_container(cfg.data.split, resolve=True)}
        write_json(resolve_path(SPLIT), split | {"provenance": provenance("benchmark", split_conf)})
        write_json(resolve_path(TASKS), {"tasks": listing, "mode": split["mode"]})
        write_json(resolve_path(COLLECTIONS), {"collections": {
            name: {"documents": docs, "document_sha256": {d: hashes[d] for d in docs}}
            for name, docs in collections.items()}})
        write_json(resolve_path(QUESTIONS_PROVENANCE), provenance("benchmark", {
            "seed": cfg.seed, "benchmark": OmegaConf.to_container(cfg.benchmark, resolve=True),
            "teacher": stats.get("teacher"), "reference_source": cfg.data.reference_source}))
        write_json(resolve_path(BENCHMARK_METRICS), stats)
        log_metrics({k: v for k, v in stats.items() if k != "documents_without_questions"}, prefix="benchmark.")
        log_artifact(resolve_path(BENCHMARK_METRICS))  # the benchmark card: counts, critic scores, sampled questions
        for name in tasks:
            log_dataset(resolve_path(questions_path(name)), f"benchmark-{name}", "evaluation")
        log.info("%s: %d training / %d benchmark documents; tasks %s", split["mode"], stats["train_documents"],
                 stats["benchmark_documents"], stats["tasks"])


if __name__ == "__main__":
    run(main)

