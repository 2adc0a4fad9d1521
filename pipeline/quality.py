"""Quality filters shared by the training set and the generated benchmark: each drop counted by its reason.

Paragraphs shorter than a length percentile, empty or malformed generations, refusals, questions that name
nothing of their paragraph (no content word in common: "What is the answer to this question?"), answers not
grounded in their paragraph (content-word overlap), and near-duplicate questions within a document (embedding
cosine).
"""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from omegaconf import DictConfig

from pipeline.embed import embed
from pipeline.text import content_words, support, tokens

FILTERS = ("short_paragraph", "empty_or_malformed", "refusal", "off_topic_question", "ungrounded_answer",
           "near_duplicate_question")


def off_topic(question: str, paragraph: str) -> bool:
    """True when none of the question's content words occurs in its paragraph (or it has none)."""
    words = content_words(question)
    have = set(tokens(paragraph))
    return not any(w in have for w in words)


def filter_rows(d: DictConfig, rows: list[dict], percentile: float | None = None) -> tuple[list[dict], Counter, float]:
    """Rows that pass every filter, the drop count of each filter, and the paragraph-length cut-off used.

    `d` is a `conf/dataset` section; `percentile` overrides its `min_paragraph_percentile` (0: no length cut).
    Near-duplicate questions are looked for among the rows of one document (`doc_id`).
    """
    percentile = d.min_paragraph_percentile if percentile is None else percentile
    dropped = Counter(dict.fromkeys(FILTERS, 0))  # every filter reports its count, zero included
    lengths = [len(r["paragraph"]) for r in rows]
    min_len = float(np.percentile(lengths, percentile)) if lengths and percentile else 0.0
    kept = []
    for r in rows:
        q, a = (r.get("question") or "").strip(), (r.get("answer") or "").strip()
        if len(r["paragraph"]) < min_len:
            dropped["short_paragraph"] += 1
        elif len(q) < d.min_question_chars or len(a) < d.min_answer_chars:
            dropped["empty_or_malformed"] += 1
        elif any(p in (q + " " + a).lower() for p in d.refusal_patterns):
            dropped["refusal"] += 1
        elif d.drop_off_topic_questions and off_topic(q, r["paragraph"]):
            dropped["off_topic_question"] += 1
        elif support(a, r["paragraph"]) < d.min_grounding:
            dropped["ungrounded_answer"] += 1
        else:
            kept.append(r)
    by_doc = defaultdict(list)
    for i, r in enumerate(kept):
        by_doc[r["doc_id"]].append(i)
    vectors = embed(d.embedder, [r["question"] for r in kept]) if kept else None
    drop = set()
    for idx in by_doc.values():
        for a_pos, i in enumerate(idx):
            if i in drop:
                continue
            for j in idx[a_pos + 1:]:
                if j not in drop and float(vectors[i] @ vectors[j]) >= d.near_duplicate_cosine:
                    drop.add(j)
    dropped["near_duplicate_question"] = len(drop)
    return [r for i, r in enumerate(kept) if i not in drop], dropped, round(min_len, 1)
