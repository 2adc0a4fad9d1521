"""Extraction fidelity: a PDF page's words checked against a second, independent reading of the same page.

unstructured reads PDFs through pdfminer. Fonts that map the "fi"/"fl" ligature glyphs to nothing make it drop
those letters: "file" comes out as "le", "field" as "eld", "Satisfiability" as "Satisability". Nothing is left for
a cleaner to see, so the words are compared with PDFium's reading of the same page (pypdfium2: another parser,
another font decoder, in-process and in the wheel, no Debian package needed):

- `absent_words`: a paragraph's words that the second reading of its pages never produces; their share per page
  and per document is the fidelity measure;
- `repair_from_reading`: a page whose share is too high gets its absent words replaced by the words the second
  reading has at the same place (word-level alignment), so the paragraph structure, element types and page
  numbers that unstructured gave are kept;
- `repair_ligatures`: a word missing "fi", "fl", "ff", "ffi" or "ffl" becomes the word the document itself writes
  elsewhere, when exactly one such word exists: for the pages no second reading repairs.
"""
from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path

from sling.documents.clean import fix_ligatures

LIGATURES = ("ffi", "ffl", "ff", "fi", "fl")
WORD = re.compile(r"[^\W\d_]+")  # letters of any script; digits and punctuation are not compared
SOFT_HYPHEN = re.compile(r"[\x02\xad\ufffe]\s*")  # PDFium marks a word broken at a line end with \x02
LINE_BREAK_HYPHEN = re.compile(r"(?<=[^\W\d_])-\s*\n\s*(?=[^\W\d_])")
MAX_SPAN = 3  # an aligned difference longer than this many words on either side is not a misread word
BEFORE, AFTER = 1, 2  # pages around a paragraph's own that its words are looked up in
MIN_SIMILARITY = 0.5  # characters shared by a misread word and its second reading ("le"/"file": 0.67)


def second_reading(path: Path) -> list[str] | None:
    """Each page's text as PDFium reads it, ligatures spelled out and words broken at line ends joined; None
    when PDFium cannot open the file (the fidelity check is then skipped, not failed)."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return None
    try:
        pages = []
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            text = textpage.get_text_range().replace("\r\n", "\n")
            textpage.close()
            page.close()
            pages.append(fix_ligatures(SOFT_HYPHEN.sub("", text)))
        return pages
    finally:
        doc.close()


def reading_words(text: str) -> list[str]:
    """The words of a reading, in order, with a word hyphenated at a line end also joined."""
    return WORD.findall(LINE_BREAK_HYPHEN.sub("", text))


def reading_vocabulary(text: str) -> set[str]:
    """Lower-cased words of a reading, both the halves and the joined form of a word hyphenated at a line end."""
    return {w.lower() for w in WORD.findall(text) + reading_words(text)}


def absent_words(text: str, vocabulary: set[str]) -> tuple[int, int]:
    """(words, words absent from the vocabulary) of a paragraph."""
    words = [w.lower() for w in WORD.findall(text)]
    return len(words), sum(w not in vocabulary for w in words)


def _misread(a: list[str], b: list[str]) -> bool:
    """Whether our words `a` are a misreading of the reading's words `b`: their letters mostly agree, and not only
    the split between words differs ("Een" against "E en", where one reader kept an accent apart)."""
    ours, theirs = "".join(a).lower(), "".join(b).lower()
    return ours != theirs and SequenceMatcher(None, ours, theirs).ratio() >= MIN_SIMILARITY


def repair_from_reading(text: str, reading: str, vocabulary: set[str]) -> tuple[str, int]:
    """The paragraph with each run of words absent from the second reading replaced by what the reading has at the
    same place ("input le is" -> "input file is", "speci ed" -> "specified"), and the number of words replaced.

    The paragraph's words are aligned with the reading's (difflib, the paragraph being a stretch of its page); only
    a short replaced run (at most MAX_SPAN words each side) whose letters mostly agree is taken, so a page that the
    two readers order differently keeps unstructured's words. Punctuation between words is kept when the run has
    the same number of words on both sides."""
    spans = [(m.start(), m.end(), m.group()) for m in WORD.finditer(text)]
    ours = [s[2].lower() for s in spans]
    theirs = reading_words(reading)
    edits, replaced = [], 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, ours, [w.lower() for w in theirs], autojunk=False).get_opcodes():
        if op != "replace" or i2 - i1 > MAX_SPAN or j2 - j1 > MAX_SPAN:
            continue
        if all(w in vocabulary for w in ours[i1:i2]) or not _misread(ours[i1:i2], theirs[j1:j2]):
            continue
        replaced += i2 - i1
        if i2 - i1 == j2 - j1:
            edits += [(spans[i][0], spans[i][1], theirs[j]) for i, j in zip(range(i1, i2), range(j1, j2))]
        else:
            edits.append((spans[i1][0], spans[i2 - 1][1], " ".join(theirs[j1:j2])))
    return _apply(text, edits), replaced


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    """`text` with each (start, end, replacement) applied; the edits are in order and do not overlap."""
    for start, end, word in reversed(edits):
        text = text[:start] + word + text[end:]
    return text


def _cased(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def ligature_candidates(word: str, vocabulary: Counter) -> set[str]:
    """Words of the vocabulary that `word` becomes with one ligature's letters put back at one place."""
    w = word.lower()
    return {c for lig in LIGATURES for k in range(len(w) + 1) if vocabulary[c := w[:k] + lig + w[k:]]}


def repair_ligatures(texts: list[str], confirmed: list[set[str] | None]) -> tuple[list[str], int]:
    """Each text with words that lost a ligature's letters restored from the document's own vocabulary, and the
    number of repairs.

    A word ("le"), or two words split where the glyph was ("speci ed"), becomes the word the document writes
    elsewhere with one of "ffi", "ffl", "ff", "fi", "fl" put back, only when exactly one such word exists. Where the
    second reading of its page (`confirmed[i]`, lower-cased words; None where there is none) produces the word as
    it is, or there is no second reading, the restored word must also be written at least as often as the word as
    it is: "le" stays "le" in a French text that says "file" once, "at" stays "at" beside one "flat"."""
    tokens = [[m.group().lower() for m in WORD.finditer(t)] for t in texts]
    vocabulary = Counter(w for ts in tokens for w in ts)
    pairs = Counter(p for ts in tokens for p in zip(ts, ts[1:]))

    def restore(parts: list[str], seen: set[str] | None) -> str | None:
        lowered = [p.lower() for p in parts]
        if len(parts) == 1:
            candidates, count = ligature_candidates(lowered[0], vocabulary), vocabulary[lowered[0]]
        else:  # the glyph stood between the two halves
            candidates = {c for lig in LIGATURES if vocabulary[c := lowered[0] + lig + lowered[1]]}
            count = pairs[tuple(lowered)]
        if len("".join(lowered)) < 2 or len(candidates) != 1:
            return None
        (word,) = candidates
        if (seen is None or all(p in seen for p in lowered)) and vocabulary[word] < count:
            return None
        return _cased(word, parts[0])

    out, repairs = [], 0
    for text, seen in zip(texts, confirmed):
        spans, edits, i = list(WORD.finditer(text)), [], 0
        while i < len(spans):
            a = spans[i]
            b = spans[i + 1] if i + 1 < len(spans) and text[a.end():spans[i + 1].start()] == " " else None
            fixed = restore([a.group(), b.group()], seen) if b else None
            if fixed:
                edits.append((a.start(), b.end(), fixed))
                i += 2
                continue
            fixed = restore([a.group()], seen)
            if fixed:
                edits.append((a.start(), a.end(), fixed))
            i += 1
        repairs += len(edits)
        out.append(_apply(text, edits))
    return out, repairs


def _measure(texts: list[str], pages: list[int], vocabularies: list[set[str]]) -> dict[int, list[int]]:
    """Per page: [words, words absent from the second reading] of the paragraphs that start on it."""
    per_page: dict[int, list[int]] = {}
    for text, page, vocabulary in zip(texts, pages, vocabularies):
        words, absent = absent_words(text, vocabulary)
        counts = per_page.setdefault(page, [0, 0])
        counts[0] += words
        counts[1] += absent
    return per_page


def check(paragraphs: list[dict], reading: list[str], min_page_fidelity: float | None) -> tuple[list[dict], dict]:
    """A PDF's paragraphs measured against the second reading of their pages, repaired where a page's fidelity (the
    share of its words the reading also produces) is below `min_page_fidelity` (null: measured only), and their dropped
    ligatures restored; with the counts before and after. A paragraph is read against its own page, the one before
    and the two after: a merged paragraph runs on, and the pieces of a long one split on sentences keep its first page."""
    vocabs = [reading_vocabulary(page) for page in reading]
    pages = [min(max(int(p["page"] or 1), 1), len(reading)) for p in paragraphs]
    window = [range(max(page - 1 - BEFORE, 0), min(page + AFTER, len(reading))) for page in pages]  # 0-based
    context = [" ".join(reading[i] for i in pages_in) for pages_in in window]
    vocabularies = [set().union(*(vocabs[i] for i in pages_in)) for pages_in in window]
    texts = [p["text"] for p in paragraphs]
    before = _measure(texts, pages, vocabularies)
    low = {page for page, (words, absent) in before.items()
           if min_page_fidelity is not None and words and 1 - absent / words < min_page_fidelity}
    from_reading = 0
    for i, page in enumerate(pages):
        if page in low:
            texts[i], n = repair_from_reading(texts[i], context[i], vocabularies[i])
            from_reading += n
    texts, ligatures = repair_ligatures(texts, vocabularies)
    after = _measure(texts, pages, vocabularies)
    words = sum(w for w, _ in before.values())
    absent_before, absent_after = sum(a for _, a in before.values()), sum(a for _, a in after.values())
    stats = {"fidelity_words": words, "fidelity_absent_before": absent_before, "fidelity_absent": absent_after,
             "absent_share_before": round(absent_before / words, 5) if words else 0.0,
             "absent_share": round(absent_after / words, 5) if words else 0.0,
             "pages_repaired": len(low), "words_repaired_from_reading": from_reading, "ligature_repairs": ligatures}
    return [p | {"text": t} for p, t in zip(paragraphs, texts)], stats
