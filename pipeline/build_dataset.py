"""Stage build_dataset: synthetic Q&A -> filtered, document-split, formatted domain training set.

    python -m pipeline.build_dataset
    python -m pipeline.build_dataset dataset.min_grounding=0.5

Filters, each counted in metrics/dataset.json: paragraphs shorter than the configured length percentile,
empty/malformed/refusing generations, near-duplicate questions within a document (embedding cosine),
answers not grounded in their paragraph (content-word overlap). The split is by document, seeded, and
written as a manifest; no document is on both sides.
"""
from __future__ import annotations

import logging
import random

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.cli import run
from pipeline.config import InputError, load_config, resolve_path
from pipeline.embed import embed
from pipeline.formats import domain_prompt, record
from pipeline.quality import filter_rows
from pipeline.io import provenance, read_jsonl, write_json, write_jsonl
from pipeline.paths import DOMAIN_DIR, SYNTHETIC
from pipeline.tracking import log_dataset, log_metrics, stage_run

log = logging.getLogger("build_dataset")

OUT_DIR = DOMAIN_DIR
METRICS = "metrics/dataset.json"


def split_by_document(doc_ids: list[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    docs = sorted(set(doc_ids))
    random.Random(seed).shuffle(docs)
    n_eval = round(len(docs) * eval_fraction)
    if eval_fraction > 0 and len(docs) >= 2:
        n_eval = min(max(1, n_eval), len(docs) - 1)
    return sorted(docs[n_eval:]), sorted(docs[:n_eval])


def raft_contexts(cfg: DictConfig, rows: list[dict], train_docs: list[str]) -> tuple[list[dict], int]:
    """Per row: the paragraphs of its RAG context (RAFT-style, `dataset.raft`) and what went into it.

    Distractors are the paragraphs of other training documents closest to the row's question (rag.embedder, the
    answer stage's retriever), best first, among those at most `raft.max_distractor_chars` long; the gold paragraph, when kept (seeded, 1 - raft.no_gold_share), goes to
    a seeded position among them. Returns the contexts and how many rows got fewer distractors than asked for.
    """
    r = cfg.dataset.raft
    pool: dict[str, dict] = {}
    for row in rows:
        # a distractor stands for a retrieved chunk: paragraphs longer than one never reach a prompt at answer time
        if row["doc_id"] in train_docs and len(row["paragraph"]) <= r.max_distractor_chars:
            pool.setdefault(row["paragraph_hash"], {"text": row["paragraph"], "doc_id": row["doc_id"],
                                                    "document": row["document"], "hash": row["paragraph_hash"]})
    candidates = list(pool.values())
    vectors = embed(cfg.rag.embedder, [c["text"] for c in candidates]) if candidates else None
    questions = embed(cfg.rag.embedder, [row["question"] for row in rows])
    rng = random.Random(f"{cfg.seed}:raft")
    contexts, short = [], 0
    for i, row in enumerate(rows):
        gold = rng.random() >= r.no_gold_share
        want = r.distractors if gold else r.distractors + 1  # the same number of chunks either way
        ranked = [] if vectors is None else [candidates[j] for j in np.argsort(-(vectors @ questions[i]), kind="stable")]
        picked = [c for c in ranked if c["doc_id"] != row["doc_id"]][:want]
        short += len(picked) < want
        texts = [c["text"] for c in picked]
        position = rng.randrange(len(texts) + 1) if gold else None
        if gold:
            texts.insert(position, row["paragraph"])
        contexts.append({"texts": texts, "lineage": {
            "gold_in_context": gold, "gold_position": position, "distractor_hashes": [c["hash"] for c in picked],
            "distractor_documents": [c["document"] for c in picked]}})
    return contexts, short


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("build_dataset", cfg):
        rows = read_jsonl(resolve_path(SYNTHETIC))
        kept, dropped, min_len = filter_rows(cfg.dataset, rows)
        if not kept:
            raise InputError(f"every one of the {len(rows)} synthetic rows was filtered out ({dict(dropped)}); "
                             "loosen conf/dataset (e.g. dataset.min_grounding) or use a stronger teacher")
        train_docs, eval_docs = split_by_document([r["doc_id"] for r in kept], cfg.dataset.eval_fraction, cfg.seed)
        out = {"train": [], "eval": []}
        raft = cfg.dataset.raft.enabled
        contexts, short = raft_contexts(cfg, kept, train_docs) if raft else ([None] * len(kept), 0)
        for r, ctx in zip(kept, contexts):
            side = "eval" if r["doc_id"] in eval_docs else "train"
            lineage = {k: r.get(k) for k in ("doc_id", "document", "page", "paragraph_hash", "teacher", "prompt_version")}
            if ctx is None:
                prompt, response = domain_prompt(cfg, r["paragraph"], r["question"]), r["answer"]
            else:
                prompt = cfg.rag.prompt_template.format(context="\n\n".join(ctx["texts"]), question=r["question"])
                response = r["answer"] if ctx["lineage"]["gold_in_context"] else cfg.dataset.raft.absent_answer
                lineage["raft"] = ctx["lineage"]
            out[side].append(record(prompt, response, question=r["question"], seed=cfg.seed, **lineage))
        if short:
            log.warning("%d rows got fewer RAFT distractors than dataset.raft.distractors: too few other training "
                        "documents", short)
        if not out["eval"]:
            log.warning("only one document survived the filters: the eval split is empty, eval loss is skipped")
        for side, recs in out.items():
            write_jsonl(resolve_path(f"{OUT_DIR}/{side}.jsonl"), recs)
        names = {r["doc_id"]: r["document"] for r in kept}
        write_json(resolve_path(f"{OUT_DIR}/split.json"), {
            "train": {d: names[d] for d in train_docs}, "eval": {d: names[d] for d in eval_docs},
            "provenance": provenance("build_dataset", OmegaConf.to_container(cfg.dataset, resolve=True) | {"seed": cfg.seed},
                                     {"synthetic": resolve_path(SYNTHETIC)})})
        metrics = {"input_rows": len(rows), "kept": len(kept), "train_rows": len(out["train"]),
                   "eval_rows": len(out["eval"]), "train_documents": len(train_docs), "eval_documents": len(eval_docs),
                   "dropped": dict(dropped), "min_paragraph_chars": min_len}
        if raft:
            metrics["raft"] = {"rows_without_gold": sum(not c["lineage"]["gold_in_context"] for c in contexts),
                               "rows_short_of_distractors": short}
        write_json(resolve_path(METRICS), metrics)
        log_metrics(metrics, prefix="dataset.")
        for side, context in (("train", "training"), ("eval", "evaluation")):
            log_dataset(resolve_path(f"{OUT_DIR}/{side}.jsonl"), f"domain-{side}", context)
        log.info("%s", metrics)


if __name__ == "__main__":
    run(main)
