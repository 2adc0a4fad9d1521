"""An independent lexical retriever (BM25, `bm25s`) for the benchmark's round-trip check: a generated question must
find its source paragraph(s) among the top k of a retriever that is not the run's own index. A filter on the run's
own dense retriever would keep exactly the questions it finds and make the run's recall@k meaningless; BM25 shares
nothing with it (no embedder, no chunking). Tokens are any script's words (sling.words: a Han character is one);
the stop words are the corpus's own: words in more than `max_df` of its paragraphs ("the", "der", "le" in a folder in
that language) say nothing of where a question comes from, so no language needs a list and none is favoured.
"""
from __future__ import annotations

from sling.words import words


class Lexical:
    """BM25 over paragraphs identified by their `paragraph_hash`."""

    def __init__(self, paragraphs: list[dict], max_df: float = 0.5):
        import bm25s

        self.hashes = [p["paragraph_hash"] for p in paragraphs]
        corpus = [words(p["text"]) for p in paragraphs]
        df: dict[str, int] = {}
        for toks in corpus:
            for t in set(toks):
                df[t] = df.get(t, 0) + 1
        self.stop = {t for t, n in df.items() if n > max_df * len(corpus)}
        self.vocabulary = set(df) - self.stop
        self.retriever = bm25s.BM25()
        self.retriever.index([[t for t in toks if t not in self.stop] or ["\x00"] for toks in corpus],
                             show_progress=False)

    def ranks(self, questions: list[str], k: int) -> list[dict[str, int]]:
        """Per question, the 1-based rank of each of the top `k` paragraphs that share a word with it, by hash."""
        out: list[dict[str, int]] = [{} for _ in questions]
        queries = [[t for t in words(q) if t in self.vocabulary] for q in questions]
        asked = [i for i, q in enumerate(queries) if q]  # a question of stop words alone finds nothing
        if not asked:
            return out
        docs, scores = self.retriever.retrieve([queries[i] for i in asked], k=min(k, len(self.hashes)),
                                               show_progress=False)
        for i, row, row_scores in zip(asked, docs, scores):
            out[i] = {self.hashes[int(j)]: rank for rank, (j, s) in enumerate(zip(row, row_scores), 1) if s > 0}
        return out


def findable_rank(found: dict[str, int], sources: list[str]) -> int | None:
    """The worst rank among the sources (every source must be found), or None when one is not in the top k."""
    ranks = [found.get(h) for h in sources]
    return None if any(r is None for r in ranks) else max(ranks)
