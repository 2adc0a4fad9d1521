"""Words of any script, as every lexical measure reads them: the quality filters, overlap and grounding
(sling.text) and the benchmark's BM25 round trip (sling.retrieval.lexical).

A word is a run of letters or digits of any script, lower-cased ("mémoire", "команда", "λέξη"). The scripts written
without spaces follow their own rule: each Han character is a word, a katakana run is one, and hiragana (mostly
particles and endings) is none; a whole Chinese or Japanese sentence would otherwise be one "word" that no question
shares. (Before, only [a-z0-9] counted: a question in Cyrillic, Greek or Arabic had no content word at all, so every
one was "off topic" and every answer "grounded".)
"""
from __future__ import annotations

import re

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KANA = "\u3040-\u30ff"
WORD = re.compile(rf"[{_HAN}]|[\u30a0-\u30ff]+|(?:(?![{_HAN}{_KANA}])[^\W_])+")


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased, in order."""
    return WORD.findall(text.lower())
