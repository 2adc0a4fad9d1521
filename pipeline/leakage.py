"""Stage leakage: does the benchmark test what the student was trained on?

    python -m pipeline.leakage                      # -> metrics/leakage.json

Counts, between the domain training set (train and eval splits) and every benchmark question:
- near-duplicate questions: embedding cosine at least `benchmark.leakage.question_cosine`;
- paragraph overlap: a benchmark question whose source paragraph (by hash) is a training row's paragraph;
- benchmark documents that the training set was written from (by name).
When near-duplicates plus overlaps exceed `data.leakage_max` the stage fails, naming the pairs (null: report
only; the sample and paper profiles benchmark documents they may train on, and say so here).
"""
from __future__ import annotations

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.io import read_jsonl, write_json
from sling.paths import DOMAIN_DIR, LEAKAGE_METRICS, dataset_path, produced
from sling.scoring.leakage import LeakageError, benchmark_questions, log, measure
from sling.tracking.runs import log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("leakage", cfg):
        train = [r for side in ("train", "eval") for r in read_jsonl(produced(dataset_path(DOMAIN_DIR, side), "build_dataset"))]
        result = measure(cfg.benchmark.leakage, cfg.dataset, cfg.data, train, benchmark_questions())
        write_json(resolve_path(LEAKAGE_METRICS), result)
        log_metrics({k: v for k, v in result.items() if isinstance(v, (int, float))}, prefix="leakage.")
        log.info("%d of %d benchmark questions leak (%d near-duplicate, %d paragraph overlap; threshold %s)",
                 result["leaked"], result["benchmark_questions"], result["near_duplicate_questions"],
                 result["paragraph_overlap"], cfg.data.leakage_max)
        if cfg.data.leakage_max is not None and result["leaked"] > cfg.data.leakage_max:
            named = [f"{p['benchmark_id']}: {p['benchmark_question']!r} ~ training {p['training_question']!r} "
                     f"(cosine {p['cosine']})" for p in result["pairs"][:10]]
            named += [f"{o['benchmark_id']}: its source paragraph {o['paragraph_hash']} is in the training set"
                      for o in result["overlapping_paragraphs"][:10]]
            raise LeakageError(f"{result['leaked']} benchmark questions leak from the training set, more than "
                               f"data.leakage_max={cfg.data.leakage_max}:\n  " + "\n  ".join(named) +
                               f"\n(all in {LEAKAGE_METRICS}; raise data.leakage_max or "
                               "benchmark.leakage.question_cosine if these are acceptable)")


if __name__ == "__main__":
    run(main)

