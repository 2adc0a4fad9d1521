"""Leakage between the training set and the benchmark: each benchmark question's nearest training question by cosine,
and the count over `benchmark.leakage.question_cosine`. Entry point: `pipeline/leakage.py`.
"""
from __future__ import annotations

import logging

import numpy as np

from sling.config import resolve_path
from sling.errors import UserError
from sling.io import read_jsonl
from sling.paths import questions_path, tasks
from sling.embed import embed
from sling.schema import Data, Dataset, Leakage

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


def measure(leakage: Leakage, dataset: Dataset, data: Data, train: list[dict], bench: list[dict]) -> dict:
    """The leakage metrics: the benchmark questions (`bench`) whose cosine to a training question (`train`; both
    embedded by `dataset.embedder`) reaches `leakage.question_cosine` (the `benchmark.leakage` section) or that share
    a training row's paragraph, and the threshold the stage fails over (`data.leakage_max`)."""
    cos = leakage.question_cosine
    pairs = []
    if train and bench:
        sim = embed(dataset.embedder, [q["question"] for q in bench]) @ embed(
            dataset.embedder, [r["question"] for r in train]).T
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
            "threshold": data.leakage_max, "pairs": pairs[:SHOWN], "overlapping_paragraphs": overlap[:SHOWN]}

