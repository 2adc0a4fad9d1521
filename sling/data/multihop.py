"""Multi-hop benchmark questions that need every hop: pairs of paragraphs, one question over both, and the hop check.

Pairs: benchmark paragraphs linked by embedding similarity (`benchmark.multihop.min_cosine` up to `max_cosine`:
related, not repeating each other), within and across the benchmark documents, each paragraph in one pair at most,
the most similar first. The teacher writes a question needing a fact of each (sling.data.questions.MULTIHOP_PROMPT), or (`compose`, the
default for the embedded teacher, which answers instead of writing one question over two texts) the pair's question
is two kept single-paragraph questions, one of each paragraph, asked together: it needs both paragraphs by
construction, and the same checks prove it. Composed questions only link paragraphs that kept a question.

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

from sling.embed import embed
from sling.text import content_words, support, tokens

HOP_DROPS = ("hop_names_one_paragraph", "hop_one_paragraph_suffices")


def pairs(embedder: str, paragraphs: list[dict], min_cosine: float, max_cosine: float, limit: int,
          capacity: list[int] | None = None) -> list[tuple[dict, dict]]:
    """Up to `limit` pairs of paragraphs whose cosine lies in [min_cosine, max_cosine), the most similar first; each
    pair in reading order (document, then paragraph). A paragraph joins at most `capacity[i]` pairs (one each by
    default: disjoint pairs)."""
    if len(paragraphs) < 2 or limit < 1:
        return []
    v = embed(embedder, [p["text"] for p in paragraphs])
    sims = v @ v.T
    iu = np.triu_indices(len(paragraphs), k=1)
    cand = [(float(sims[i, j]), int(i), int(j)) for i, j in zip(*iu) if min_cosine <= sims[i, j] < max_cosine]
    cand.sort(key=lambda c: (-c[0], c[1], c[2]))
    left = list(capacity) if capacity is not None else [1] * len(paragraphs)
    out = []
    for _, i, j in cand:
        if left[i] < 1 or left[j] < 1:
            continue
        left[i] -= 1
        left[j] -= 1
        out.append((paragraphs[i], paragraphs[j]))
        if len(out) >= limit:
            break
    return out


def compose(single: list[dict], linked: list[tuple[dict, dict]],
            needs_both=None) -> list[tuple[dict, dict, dict, dict]]:
    """For each linked pair of paragraphs, a kept single-paragraph question of each, each question used once, as
    (first paragraph, second, its question row, the other's): a composed multi-hop question asks both at once. Of a
    pair's unused questions, the most findable couple that `needs_both(a, b, qa, qb)` accepts (the hop check) is
    taken, else the most findable couple (which the checks then drop, counted)."""
    queues: dict[str, list[dict]] = {}
    for r in sorted(single, key=lambda r: r.get("findable_rank") or 0):
        queues.setdefault(r["paragraph_hash"], []).append(r)
    out = []
    for a, b in linked:
        qa, qb = queues.get(a["paragraph_hash"]), queues.get(b["paragraph_hash"])
        if not qa or not qb:
            continue
        couples = [(x, y) for x in qa for y in qb]
        x, y = next((c for c in couples if needs_both is None or needs_both(a, b, *c)), couples[0])
        qa.remove(x)
        qb.remove(y)
        out.append((a, b, x, y))
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
