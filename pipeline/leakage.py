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

import logging

import numpy as np
from omegaconf import DictConfig

from pipeline.cli import run
from pipeline.config import UserError, load_config, resolve_path
from pipeline.embed import embed
from pipeline.io import read_jsonl, write_json
from pipeline.paths import DOMAIN_DIR, LEAKAGE_METRICS, questions_path, tasks
from pipeline.tracking import log_metrics, stage_run

log = logging.getLogger("leakage")
SHOWN = 20  # pairs written to the metrics file and named in the error


class LeakageError(UserError):
    pass


def benchmark_questions() -> list[dict]:
    """Every benchmark question once (a question in a per-document task and the joint task counts once)."""
    seen, out = set(), []
    for name in tasks():
        for q in read_jsonl(resolve_path(questions_path(name))):
            key = (q["question"], q.get("paragraph_hash"))
            if key not in seen:
                seen.add(key)
                out.append(q | {"task": name})
    return out


def measure(cfg: DictConfig, train: list[dict], bench: list[dict]) -> dict:
    cos = cfg.benchmark.leakage.question_cosine
    pairs = []
    if train and bench:
        sim = embed(cfg.dataset.embedder, [q["question"] for q in bench]) @ embed(
            cfg.dataset.embedder, [r["question"] for r in train]).T
        for i, j in zip(*np.nonzero(sim >= cos)):
            pairs.append({"benchmark_id": bench[i]["id"], "benchmark_question": bench[i]["question"],
                          "training_question": train[j]["question"], "training_document": train[j].get("document"),
                          "cosine": round(float(sim[i, j]), 4)})
        max_cos = round(float(sim.max()), 4)
    else:
        max_cos = None
    pairs.sort(key=lambda p: -p["cosine"])
    train_hashes = {r.get("paragraph_hash") for r in train} - {None}
    overlap = [{"benchmark_id": q["id"], "document": q.get("document"), "paragraph_hash": q["paragraph_hash"]}
               for q in bench if q.get("paragraph_hash") in train_hashes]
    shared_docs = sorted({q.get("document") for q in bench} & {r.get("document") for r in train} - {None, ""})
    return {"training_questions": len(train), "benchmark_questions": len(bench), "question_cosine": cos,
            "near_duplicate_questions": len({p["benchmark_id"] for p in pairs}), "near_duplicate_pairs": len(pairs),
            "max_question_cosine": max_cos, "paragraph_overlap": len(overlap), "shared_documents": shared_docs,
            "leaked": len({p["benchmark_id"] for p in pairs} | {o["benchmark_id"] for o in overlap}),
            "threshold": cfg.data.leakage_max, "pairs": pairs[:SHOWN], "overlapping_paragraphs": overlap[:SHOWN]}


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("leakage", cfg):
        train = [r for side in ("train", "eval") for r in read_jsonl(resolve_path(f"{DOMAIN_DIR}/{side}.jsonl"))]
        result = measure(cfg, train, benchmark_questions())
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
