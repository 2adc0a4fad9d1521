"""The domain training set from synthetic Q&A rows: the eval split (by document where the folder allows, by paragraph
otherwise, never more than `dataset.eval_max_share` of the rows), the prompt records, and RAFT contexts (the gold
paragraph among retrieved distractors, a share of rows without it). Entry point: `pipeline/build_dataset.py`.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sling.embed import embed
from sling.schema import Raft, Rag

log = logging.getLogger("build_dataset")


@dataclass(frozen=True)
class EvalSplit:
    """Which side each kept row is on, and how the split was made: `by` is `document` (whole documents held out),
    `paragraph` (whole paragraphs: no document fitted within dataset.eval_max_share) or `none` (nothing held out)."""
    by: str
    sides: list[str]                 # per row, in the rows' order: "train" or "eval"
    eval_paragraphs: list[str]       # the held-out paragraphs' hashes (by paragraph; empty by document)

    def documents(self, rows: list[dict], side: str) -> list[str]:
        """The documents with at least one row on `side`, sorted."""
        return sorted({r["doc_id"] for r, s in zip(rows, self.sides) if s == side})


def split_eval(rows: list[dict], eval_fraction: float, eval_max_share: float, seed: int) -> EvalSplit:
    """The eval split of the kept rows, seeded, never more than `eval_max_share` of them.

    By document where the folder allows: in a seeded order of the documents, the first ones (up to the
    `eval_fraction` share of the documents, at least one, never all) whose rows fit within the cap; a folder whose
    first documents fit splits as it did before the cap existed. When no whole document fits (a small folder, or a
    single document), by paragraph: all the rows of a paragraph stay on one side, paragraphs taken in a seeded order
    while they fit within the cap, until the eval side holds `eval_fraction` of the rows.
    """
    cap = int(eval_max_share * len(rows) + 1e-9)  # most rows the eval side may hold
    if eval_fraction <= 0 or cap == 0:
        return EvalSplit("none", ["train"] * len(rows), [])
    size = Counter(r["doc_id"] for r in rows)
    docs = sorted(size)
    random.Random(seed).shuffle(docs)
    want = min(max(1, round(len(docs) * eval_fraction)), len(docs) - 1)
    held: list[str] = []
    for d in docs:
        if len(held) == want:
            break
        if sum(size[h] for h in held) + size[d] <= cap:
            held.append(d)
        # a document too large to fit is skipped: the next in the seeded order may
    if held:
        return EvalSplit("document", ["eval" if r["doc_id"] in held else "train" for r in rows], [])
    groups = Counter((r["doc_id"], r["paragraph_hash"]) for r in rows)
    order = sorted(groups)
    random.Random(f"{seed}:paragraphs").shuffle(order)
    target = min(max(1, round(len(rows) * eval_fraction)), cap)
    taken: set[tuple[str, str]] = set()
    total = 0
    for g in order:
        if total >= target:
            break
        if total + groups[g] <= cap:
            taken.add(g)
            total += groups[g]
    if not taken:
        return EvalSplit("none", ["train"] * len(rows), [])
    sides = ["eval" if (r["doc_id"], r["paragraph_hash"]) in taken else "train" for r in rows]
    return EvalSplit("paragraph", sides, sorted(h for _, h in taken))


def raft_contexts(raft: Raft, rag: Rag, seed: int, rows: list[dict], sides: list[str]) -> tuple[list[dict], int]:
    """Per row: the paragraphs of its RAG context (RAFT-style, `dataset.raft`) and what went into it.

    Distractors are the training side's paragraphs (`sides`, per row) of other documents closest to the row's question
    (rag.embedder, the answer stage's retriever), best first, among those at most `raft.max_distractor_chars` long; the
    gold paragraph, when kept (seeded, 1 - raft.no_gold_share), goes to a seeded position among them. Returns the
    contexts and how many rows got fewer distractors than asked for.
    """
    pool: dict[str, dict] = {}
    for row, side in zip(rows, sides):
        # a distractor stands for a retrieved chunk: paragraphs longer than one never reach a prompt at answer time
        if side == "train" and len(row["paragraph"]) <= raft.max_distractor_chars:
            pool.setdefault(row["paragraph_hash"], {"text": row["paragraph"], "doc_id": row["doc_id"],
                                                    "document": row["document"], "hash": row["paragraph_hash"]})
    candidates = list(pool.values())
    vectors = embed(rag.embedder, [c["text"] for c in candidates]) if candidates else None
    questions = embed(rag.embedder, [row["question"] for row in rows])
    rng = random.Random(f"{seed}:raft")
    contexts, short = [], 0
    for i, row in enumerate(rows):
        gold = rng.random() >= raft.no_gold_share
        want = raft.distractors if gold else raft.distractors + 1  # the same number of chunks either way
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

