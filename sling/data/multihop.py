"""Multi-hop benchmark questions that need every hop: pairs of paragraphs, one question over both, and the hop check.

Pairs: benchmark paragraphs linked by embedding similarity (`benchmark.multihop.min_cosine` up to `max_cosine`:
related, not repeating each other), within and across the benchmark documents, each paragraph in one pair at most,
the most similar first. The teacher writes a question needing a fact of each (sling.data.questions.MULTIHOP_PROMPT).

The hop check (`hop_problem`) keeps a question only if neither paragraph alone answers it, by two support checks:
- the question must name something only the first paragraph has and something only the second has (a content word
  found in one and not the other): a question all of whose words one paragraph holds asks about that paragraph;
- one paragraph alone must not hold its reference. An extractive reference takes its part from each paragraph,
  and each part must hold something the other paragraph lacks: the share of its content words found in the other
  stays below `max_single_support` (it fails exactly when one paragraph already says what the other adds); a
  teacher's reference must have that share below the bound in either paragraph.
"""
from __future__ import annotations

import numpy as np

from sling.retrieval.embed import embed
from sling.scoring.text import content_words, support, tokens

HOP_DROPS = ("hop_names_one_paragraph", "hop_one_paragraph_suffices")


def pairs(embedder: str, paragraphs: list[dict], min_cosine: float, max_cosine: float, limit: int) -> list[tuple[dict, dict]]:
    """Up to `limit` disjoint pairs of paragraphs whose cosine lies in [min_cosine, max_cosine), the most similar
    first; each pair in reading order (document, then paragraph)."""
    if len(paragraphs) < 2 or limit < 1:
        return []
    v = embed(embedder, [p["text"] for p in paragraphs])
    sims = v @ v.T
    iu = np.triu_indices(len(paragraphs), k=1)
    cand = [(float(sims[i, j]), int(i), int(j)) for i, j in zip(*iu) if min_cosine <= sims[i, j] < max_cosine]
    cand.sort(key=lambda c: (-c[0], c[1], c[2]))
    used: set[int] = set()
    out = []
    for _, i, j in cand:
        if i in used or j in used:
            continue
        used.update((i, j))
        out.append((paragraphs[i], paragraphs[j]))
        if len(out) >= limit:
            break
    return out


def hop_problem(question: str, parts: list[str], first: str, second: str, max_single_support: float) -> str | None:
    """Why one paragraph alone would answer the question (a drop reason in HOP_DROPS), or None when it needs both.
    `parts`: the reference's part from each paragraph (an extractive reference: each must hold something the other
    paragraph lacks), or the whole reference as one part (a teacher's: neither paragraph may hold it)."""
    a, b = set(tokens(first)), set(tokens(second))
    words = set(content_words(question))
    if not (words & (a - b)) or not (words & (b - a)):
        return "hop_names_one_paragraph"
    if len(parts) == 2:
        held = max(support(parts[0], second), support(parts[1], first))
    else:
        held = max(support(parts[0], first), support(parts[0], second))
    if held >= max_single_support:
        return "hop_one_paragraph_suffices"
    return None
