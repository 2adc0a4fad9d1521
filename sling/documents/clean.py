"""Clean text out of real PDFs, and tell prose from what is not: used by ingest on every paragraph.

What LaTeX-typeset PDFs give back through unstructured's fast strategy, and what is done about it:
- typographic ligatures (U+FB00-FB06: "ﬁ", "ﬀ", ...): Unicode NFKC on those characters only, which maps each
  to its letters; NFKC on the whole text would also rewrite superscripts, fractions and symbols that carry meaning
  (and unstructured's `clean_ligatures` also rewrites "æ" and "œ" in names and words where they belong);
- words broken at line ends ("re- turned", "visual- ized"): joined when the joined word occurs in the same
  document, kept as a compound when the hyphenated form or both halves as words occur in it ("state-of-the-
  art", "self- supervised"), else joined (a half that is not a word of the document, "re", "ized", is a fragment);
- `(cid:NN)` glyph names that a font without a Unicode map leaves behind: removed;
- curly quotes and stray whitespace: unstructured's `replace_unicode_quotes` and `clean_extra_whitespace`.

`kind(text)` names what a paragraph is when it is not prose: a formula, a numeric table, code, or a reference
list that escaped the references cut; ingest drops those (`ingest.keep=prose`) or keeps them (`all`), counted.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

LIGATURE = re.compile("[\ufb00-\ufb06]")
CID = re.compile(r"\(cid:\d+\)")
# Letters of any script ("sintác- ticas" in a Spanish manual), the second half starting in lower case.
BROKEN = re.compile(r"\b([^\W\d_]+(?:-[^\W\d_]+)*)- ([^\W\d_A-ZÀ-ÖØ-Þ][^\W\d_]*)\b")
WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
# A bibliography entry's opening: "[12] " or "Surname, A. B.," (prose that cites "Gough (1992)" is prose).
ENTRY = re.compile(r"(?:^|(?<=[.)]\s))(?:\[\d+\]\s*)?[A-Z][A-Za-z'’-]+,\s+(?:[A-Z]\.\s*(?:-\s*[A-Z]\.\s*)?,?\s*){1,3}")
YEAR = re.compile(r"\(?\b(?:19|20)\d{2}[a-z]?\b\)?")
MATH = set("=+−-×÷*/^_<>≤≥≈∼∝∑∏∫∂∇√∞±·|()[]{}") | {chr(c) for c in range(0x391, 0x3CA)}
CODE = re.compile(r"[{};]|\bdef |\breturn\b|\bimport\b|==|!=|\+\+|->|::|\w+\(\)|#include|\bfor \w+ in\b")
NUMBER = re.compile(r"^[-+±]?\(?\d[\d.,:%]*\)?[%*]?$")
KINDS = ("formula", "table", "code", "references")


def vocabulary(texts: list[str]) -> Counter:
    """Lower-cased words (hyphenated forms included) of a document, with their counts; the halves of words broken
    at line ends are not words of their own, so they are left out."""
    return Counter(w.lower() for t in texts for w in WORD.findall(BROKEN.sub(" ", t)))


def fix_ligatures(text: str) -> str:
    return LIGATURE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def join_broken(text: str, vocab: Counter) -> str:
    """Words broken at a line end: joined, or kept as a hyphenated compound when the document says so."""
    def fix(m: re.Match) -> str:
        left, right = m.group(1), m.group(2)
        joined, compound = f"{left}{right}", f"{left}-{right}"
        if vocab[joined.lower()]:
            return joined
        if vocab[compound.lower()] or (vocab[left.lower()] and vocab[right.lower()]):
            return compound
        return joined
    return BROKEN.sub(fix, text)


def flags(text: str) -> dict[str, bool]:
    """What a raw paragraph carries before cleaning: a ligature, a word broken at a line end, glyph garbage."""
    return {"ligature": bool(LIGATURE.search(text)), "hyphenation": bool(BROKEN.search(text)),
            "glyph_garbage": bool(CID.search(text))}


def clean_glyphs(text: str) -> str:
    """Ligatures spelled out and glyph names removed: the text whose words make a document's vocabulary."""
    return CID.sub("", fix_ligatures(text))


def clean(text: str, vocab: Counter) -> str:
    from unstructured.cleaners.core import (
        clean_extra_whitespace,
        replace_unicode_quotes,
    )

    text = join_broken(clean_glyphs(text), vocab)
    return clean_extra_whitespace(replace_unicode_quotes(text))


def kind(text: str) -> str | None:
    """None for prose; else what the paragraph mostly is: formula, table, code or references."""
    tokens = text.split()
    if not tokens:
        return None
    words = [t for t in tokens if re.fullmatch(r"[A-Za-z][a-z]+[.,;:!?)]?", t)]
    chars = [c for c in text if not c.isspace()]
    entries = len(ENTRY.findall(text))
    if entries and (entries >= 2 or text.startswith("[")) and len(YEAR.findall(text)) >= entries:
        return "references"
    if len(CODE.findall(text)) >= max(3, len(tokens) / 8):
        return "code"
    if sum(bool(NUMBER.match(t)) for t in tokens) >= 0.4 * len(tokens):
        return "table"
    if sum(c in MATH for c in chars) >= 0.12 * len(chars) or len(words) < 0.4 * len(tokens):
        return "formula"
    return None
