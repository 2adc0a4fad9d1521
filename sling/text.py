"""Small text measures shared by dataset filters and scoring: content words, overlap, sentences."""
from __future__ import annotations

import re

from sling.words import words

STOPWORDS = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been being it its this that
these those there here which who whom whose what when where why how not no do does did done can could should would may might
will shall into than then so such about over under also only very more most other some any each all both their they them
his her he she we you your our i me my us""".split())


def tokens(text: str) -> list[str]:
    return words(text)


def content_words(text: str) -> list[str]:
    return [t for t in tokens(text) if t not in STOPWORDS]


def support(claim: str, evidence: str) -> float:
    """Share of the claim's content words that occur in the evidence (1.0 for a claim with none)."""
    words = content_words(claim)
    if not words:
        return 1.0
    have = set(tokens(evidence))
    return sum(w in have for w in words) / len(words)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|(?<=[\u3002\uff01\uff1f])|\n+", text) if len(s.strip()) > 2]
