"""Rescore the paper's own answers with this project's scorer, so the paper's table and ours stand side by side.

    python -m pipeline.rescore_paper data=paper              # -> metrics/paper_rescored.json, results/paper_rescored.json
    python -m pipeline.rescore_paper data=paper data.published.dir=/data/david-goliath/paper_results

Stage rescore_paper. For each task (`data.published.files`: task -> file prefix) and model
(`data.published.models`) it reads the published per-question file `<dir>/<prefix>_results_<model>.csv`
(`question`, `model_response`, `context_chunk_1..3`, `inference_speed_seconds`, and the paper's own
`cosine_similarity`), takes the reference answers from the `gpt_response` column of the task's question file
(as the benchmark stage normalised it into `reference`, matched by question text), and scores
the answers exactly as `pipeline.score` scores ours: cosine, shuffled baseline, rescaled, discrimination,
token F1, ROUGE-L, grounding in the paper's retrieved chunks, recall@3/MRR of the source paragraph,
controls and paired differences. The paper's own mean cosine (instructor-large) is kept beside ours.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.cli import run
from pipeline.config import InputError, load_config, resolve_path
from pipeline.embed import embed
from pipeline.io import read_jsonl, write_json
from pipeline.paths import PAPER_RESCORED, PAPER_RESCORED_TABLE, questions_path, tasks
from pipeline.score import (paired_differences, retrieval_metrics, score_answers, score_controls, soundness,
                            summarise)
from pipeline.tracking import log_artifact, log_metrics, stage_run

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


def rescore_task(cfg: DictConfig, task: str, task_file: str) -> tuple[dict, list[dict]]:
    refs = references(task)
    per_model, answers, order = {}, {}, None
    for model in cfg.data.published.models:
        path = resolve_path(cfg.data.published.dir) / f"{task_file}_results_{model}.csv"
        rows = read_results(path)
        keys = [" ".join(r["question"].split()) for r in rows]
        unknown = [k[:60] for k in keys if k not in refs]
        if unknown:
            raise InputError(f"{path}: questions not in the benchmark file: {unknown}")
        if order is not None and keys != order:
            raise InputError(f"{path}: its questions differ from the other models' files for {task_file}")
        order, per_model[model] = keys, rows
    references_text = [refs[k]["reference"].strip() for k in order]
    ref_v = embed(cfg.eval.embedder, references_text)
    result: dict = {"questions": len(order), "models": {}}
    per_q = {}
    table = [{"question": k, "reference": r} for k, r in zip(order, references_text)]
    for model, rows in per_model.items():
        chunks = [[r[f"context_chunk_{i}"] for i in (1, 2, 3)] for r in rows]
        answers[model] = [r["model_response"].strip() for r in rows]
        q = score_answers(answers[model], references_text, chunks, cfg, ref_v)
        per_q[model] = q
        s = summarise(q, cfg)
        s["paper_cosine"] = round(float(np.mean([float(r["cosine_similarity"]) for r in rows])), 4)
        s["latency_s"] = round(float(np.mean([float(r["inference_speed_seconds"]) for r in rows])), 2)
        retrieval, ranks = retrieval_metrics([refs[k].get("text", "") for k in order],
                                             [[{"text": t} for t in c] for c in chunks], 3, cfg)
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
    result["controls"] = score_controls(references_text, chunks, cfg, ref_v)
    result["soundness"] = soundness(result["models"], result["controls"])
    result["paired"] = paired_differences(per_q, cfg)
    return result, table


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("rescore_paper", cfg):
        scores, tables = {}, {}
        if not cfg.data.published.models:
            log.info("data.published.models is empty: data=%s has no published answers to rescore, so %s records "
                     "none (data=paper rescores the paper's)", cfg.data.name, PAPER_RESCORED)
        else:
            unknown = sorted(set(cfg.data.published.files) - set(tasks()))
            if unknown:
                raise InputError(f"data.published.files names tasks {unknown}; the benchmark's are {sorted(tasks())}")
            for task, task_file in cfg.data.published.files.items():
                scores[task], tables[task] = rescore_task(cfg, task, task_file)
        write_json(resolve_path(PAPER_RESCORED), scores)
        write_json(resolve_path(PAPER_RESCORED_TABLE), tables)
        log_metrics(scores, prefix="paper.")
        log_artifact(resolve_path(PAPER_RESCORED))
        for task, s in scores.items():
            for m, v in s["models"].items():
                log.info("%s %-11s paper cosine %.4f | ours: cosine %.3f (b=%.3f) rescaled %.3f F1 %.3f ROUGE-L %.3f "
                         "grounding %.2f", task, m, v["paper_cosine"], v["cosine"], v["baseline"], v["rescaled"],
                         v["token_f1"], v["rouge_l"], v["grounding"])


if __name__ == "__main__":
    run(main)
