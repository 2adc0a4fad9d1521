"""The paper's published answers (its results files) scored exactly as ours are, so the two can sit side by side.
Entry point: `pipeline/rescore_paper.py`.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from sling.config import resolve_path
from sling.errors import InputError
from sling.embed import embed
from sling.io import read_jsonl
from sling.paths import questions_path
from sling.schema import Eval, Published
from sling.scoring.metrics import (
    paired_differences,
    retrieval_metrics,
    score_answers,
    score_controls,
    soundness,
    summarise,
)

log = logging.getLogger("rescore_paper")


NEED = ("question", "model_response", "context_chunk_1", "context_chunk_2", "context_chunk_3",
        "inference_speed_seconds", "cosine_similarity")


def read_results(path: Path) -> list[dict]:
    """The paper's per-question output file (comma-separated, multi-line cells)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: set data.published.dir to the folder of the published "
                                f"<prefix>_results_<model>.csv files (the paper's paper_results/)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in NEED if rows and c not in rows[0]]
    if not rows or missing:
        raise InputError(f"{path}: {'no rows' if not rows else f'missing columns {missing}'}; expected the paper's "
                         f"<task>_results_<model>.csv with {list(NEED)}")
    return rows


def references(task: str) -> dict[str, dict]:
    """Question text -> the benchmark row (its reference answer and source paragraph), as the benchmark stage wrote it."""
    rows = read_jsonl(resolve_path(questions_path(task)))
    empty = [r["id"] for r in rows if not str(r.get("reference") or "").strip()]
    if empty:
        raise InputError(f"task {task}: questions {empty} have no reference answer (the paper's gpt_response) to "
                         "score the published answers against")
    return {" ".join(r["question"].split()): r for r in rows}


def rescore_task(task: str, task_file: str, published: Published, ev: Eval, seed: int) -> tuple[dict, list[dict]]:
    """One task's published answers (`data.published`: the paper's result files) scored as the score stage scores
    ours, with the controls and paired differences; and the per-question table."""
    refs = references(task)
    per_model, answers, order = {}, {}, None
    for model in published.models:
        path = resolve_path(published.dir) / f"{task_file}_results_{model}.csv"
        rows = read_results(path)
        keys = [" ".join(r["question"].split()) for r in rows]
        unknown = [k[:60] for k in keys if k not in refs]
        if unknown:
            raise InputError(f"{path}: questions not in the benchmark file: {unknown}")
        if order is not None and keys != order:
            raise InputError(f"{path}: its questions differ from the other models' files for {task_file}")
        order, per_model[model] = keys, rows
    references_text = [refs[k]["reference"].strip() for k in order]
    ref_v = embed(ev.embedder, references_text)
    result: dict = {"questions": len(order), "models": {}}
    per_q = {}
    table = [{"question": k, "reference": r} for k, r in zip(order, references_text)]
    for model, rows in per_model.items():
        chunks = [[r[f"context_chunk_{i}"] for i in (1, 2, 3)] for r in rows]
        answers[model] = [r["model_response"].strip() for r in rows]
        q = score_answers(answers[model], references_text, chunks, ev, ref_v)
        per_q[model] = q
        s = summarise(q, ev, seed)
        s["paper_cosine"] = round(float(np.mean([float(r["cosine_similarity"]) for r in rows])), 4)
        s["latency_s"] = round(float(np.mean([float(r["inference_speed_seconds"]) for r in rows])), 2)
        retrieval, ranks = retrieval_metrics([refs[k].get("text", "") for k in order],
                                             [[{"text": t} for t in c] for c in chunks], 3, ev, seed)
        s["retrieval"] = retrieval
        result["models"][model] = s
        for i, row in enumerate(table):
            row[model] = answers[model][i]
            row[f"{model}_cosine"] = round(float(q["cosine"][i]), 4)
            row[f"{model}_paper_cosine"] = round(float(rows[i]["cosine_similarity"]), 4)
            row[f"{model}_token_f1"] = round(float(q["token_f1"][i]), 4)
            row[f"{model}_source_rank"] = ranks[i]
    first = next(iter(per_model.values()))
    chunks = [[r[f"context_chunk_{i}"] for i in (1, 2, 3)] for r in first]
    result["controls"] = score_controls(references_text, chunks, ev, seed, ref_v)
    result["soundness"] = soundness(result["models"], result["controls"])
    result["paired"] = paired_differences(per_q, ev, seed)
    return result, table

