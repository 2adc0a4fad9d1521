"""The domain training set from synthetic Q&A rows: a split by document, the prompt records, and RAFT contexts (the
gold paragraph among retrieved distractors, a share of rows without it). Entry point: `pipeline/build_dataset.py`.
"""
from __future__ import annotations

import logging
import random

import numpy as np
from omegaconf import DictConfig

from sling.retrieval.embed import embed

log = logging.getLogger("build_dataset")


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

