"""A text's language: detected offline, named for prompts.

py3langid (a maintained fork of langid.py) carries its model in the wheel and runs on numpy: nothing is downloaded
at run time, and a document's worth of text takes milliseconds. python-iso639 (already an unstructured dependency)
names the ISO 639-1 codes it returns.
"""
from __future__ import annotations

import re

MIN_LETTERS = 20  # fewer letters than this say too little to name a language
# Quoted text in any script's quotation marks ("...", “...”, «...», „...“, 「...」) or backticks: a question
# quoting its document's words is still written in the language of the words around the quotes.
_QUOTED = re.compile('\u201e[^\u201c\u201d]*[\u201c\u201d]|"[^"]*"|\u201c[^\u201d]*\u201d|\u00ab[^\u00bb]*\u00bb|'
                     '\u300c[^\u300d]*\u300d|`[^`]*`')
MAX_CHARS = 20_000  # a document's opening pages are enough, and keep detection fast on a long manual


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of the language `text` is written in ("en", "es", ...); None for a text with too few
    letters to tell."""
    import py3langid

    text = text[:MAX_CHARS]
    if sum(c.isalpha() for c in text) < MIN_LETTERS:
        return None
    code, _ = py3langid.classify(text)  # its model loads once per process
    return code


def paragraph_language(text: str, document_language: str | None, min_letters: int = 200,
                       confidence: float = 0.95) -> str | None:
    """A paragraph's own language where it plainly differs from its document's, else the document's: a partly
    translated manual keeps some paragraphs in the original, and a question about one of them is asked in that
    paragraph's language. "Plainly": `min_letters` letters or more, one language ranked first with normalised
    probability `confidence` or more, and the document's language not among the three ranked first."""
    if not document_language or sum(c.isalpha() for c in text) < min_letters:
        return document_language
    ranked = _ranked(text)
    code, p = ranked[0]
    if code != document_language and p >= confidence and not _reads_as(ranked, document_language):
        return code
    return document_language


def _ranked(text: str) -> list[tuple[str, float]]:
    """py3langid's languages for `text`, most likely first, with normalised probabilities."""
    return _identifier().rank(text[:MAX_CHARS])


def _reads_as(ranked: list[tuple[str, float]], code: str, top: int = 3, min_probability: float = 0.05) -> bool:
    return any(lang == code and p >= min_probability for lang, p in ranked[:top])


def _identifier():
    """py3langid's model with normalised probabilities, loaded once."""
    global _IDENTIFIER
    if _IDENTIFIER is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _IDENTIFIER = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _IDENTIFIER


_IDENTIFIER = None


def matches_language(text: str, code: str, top: int = 3, min_probability: float = 0.05) -> bool | None:
    """Whether `text` reads as written in `code`: among the `top` languages py3langid ranks first (a short technical
    sentence in English can rank a kin language first, a Spanish one never ranks English in the first three), with a
    normalised probability of at least `min_probability` (an English question quoting two Portuguese words ranks
    Portuguese second, at 0.003); None for a text with too few letters to tell. Text in quotation marks is left out
    where the rest has letters enough to tell (an English question quoting a whole French sentence ranks French
    first)."""
    own = _QUOTED.sub(" ", text)
    if sum(c.isalpha() for c in own) >= MIN_LETTERS:
        text = own
    if sum(c.isalpha() for c in text) < MIN_LETTERS:
        return None
    return _reads_as(_ranked(text), code, top, min_probability)


def language_name(code: str) -> str:
    """The English name of an ISO 639-1 code ("es" -> "Spanish"); the code itself when it names no language."""
    from iso639 import Language, LanguageNotFoundError

    try:
        return Language.from_part1(code).name
    except LanguageNotFoundError:
        return code


def prompt_language(paragraph: dict) -> str:
    """The language the teacher is asked to write in: the English name of the paragraph's document's language, as
    ingest detected it ("Spanish"); a paragraph ingested before languages were recorded, or too short to tell, asks
    for the text's own language."""
    code = paragraph.get("language")
    return language_name(code) if code else "the language of the text"
