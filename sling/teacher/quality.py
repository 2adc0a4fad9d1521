"""Quality filters shared by the training set and the generated benchmark: each drop counted by its reason.

Paragraphs shorter than a length percentile, empty or malformed generations, refusals, a question and answer not in
their document's language (`language` on the row, from ingest), invalid questions
(`validity_problem`: not a question, pointing at "the text" instead of naming the subject, a reference that repeats
the question, a question copied from its paragraph), questions that name nothing of their paragraph (no content word
in common: "What is the answer to this question?"), answers not grounded in their paragraph (content-word overlap),
and near-duplicate questions within a document (embedding cosine).
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

from sling.documents.language import matches_language
from sling.embed import embed
from sling.schema import Dataset
from sling.text import content_words, support, tokens

# The validity checks, in the order they are tried; each is a drop reason of its own.
VALIDITY = ("not_a_question", "points_at_source", "echoes_prompt", "reference_repeats_question",
            "question_copies_paragraph")
FILTERS = ("short_paragraph", "empty_or_malformed", "refusal", "wrong_language", *VALIDITY, "off_topic_question",
           "ungrounded_answer", "near_duplicate_question")

# A question opens with (or, after a preposition or a clause, holds) an interrogative word or an auxiliary verb.
INTERROGATIVE = frozenset("""what which who whom whose when where why how is are was were am do does did can could
should would will shall may might must has have had""".split())
# "the text", "this passage", "the given report", "according to the paper": a question that points at its source
# instead of naming its subject cannot be asked of a retriever over many documents.
POINTER = re.compile(r"\b(the|this|that|these|those|given|above|following|provided)\s+(given\s+|above\s+|provided\s+)?"
                     r"(text|texts|passage|passages|paragraph|paragraphs|report|document|documents|paper|article|"
                     r"excerpt|extract|section|context|snippet)\b", re.I)
# The same in Spanish: "el texto", "este párrafo", "según el documento".
POINTER_ES = re.compile(r"\b(el|la|los|las|este|esta|estos|estas|ese|esa|dicho|dicha|presente|siguiente)\s+"
                        r"(texto|textos|pasaje|pasajes|párrafo|párrafos|informe|documento|documentos|artículo|"
                        r"extracto|sección|contexto|fragmento)\b", re.I)
POINTERS = {"en": POINTER, "es": POINTER_ES}


def _plain(text: str) -> str:
    """Lower case letters and digits separated by single spaces: what containment compares."""
    return " ".join(tokens(text))


def _phrases(text: str) -> set[tuple[str, ...]]:
    """Runs of three words of `text` that hold at least two content words ("tool or thing", "a question mark")."""
    ws, content = tokens(text), set(content_words(text))
    return {tuple(ws[i:i + 3]) for i in range(len(ws) - 2) if sum(w in content for w in ws[i:i + 3]) >= 2}


def instruction_phrases(prompts) -> frozenset:
    """The three-word phrases of the prompts' own instructions (their {placeholders} left out): a question that
    holds one copies the instruction ("What is a term, tool, or thing that is named ...?" from "asks what a term,
    tool or thing the text defines ... is"), in whatever language the rest is written."""
    return frozenset(p for prompt in prompts for p in _phrases(re.sub(r"\{\w+\}", " ", prompt)))


def validity_problem(question: str, answer: str, paragraph: str, language: str | None = None,
                     instruction: frozenset = frozenset()) -> str | None:
    """Why a generated question (with its reference answer) is not a valid benchmark or training row, or None.

    - not_a_question: it does not end with a question mark, or (English) holds no interrogative word or auxiliary
      ("The text asks a question about the structure of the routine rhohxc.F90.");
    - points_at_source: it points at "the text / passage / report / paper ..." (English, Spanish) instead of naming
      its subject;
    - echoes_prompt: it holds a phrase of the prompt that asked for it (`instruction`, from `instruction_phrases`);
    - reference_repeats_question: the answer holds the question, the question holds the answer, or the answer adds
      no content word the question does not already have;
    - question_copies_paragraph: the question (four words or more) is a verbatim span of its paragraph.
    """
    q = question.strip()
    words = tokens(q)
    english = language in (None, "en")
    if not q.rstrip().endswith(("?", "\uff1f", "\u061f")) or (english and not any(w in INTERROGATIVE for w in words)):
        return "not_a_question"
    pointer = POINTERS.get(language or "en")
    if pointer is not None and pointer.search(q):
        return "points_at_source"
    if instruction and not _phrases(q).isdisjoint(instruction):
        return "echoes_prompt"
    plain_q, plain_a = _plain(q), _plain(answer)
    held = content_words(answer)
    novel = [w for w in held if w not in set(words)]
    # containment counts from three words on, and overlap from three content words on: "Venus" answers "Which is
    # larger, Mars or Venus?" with a word of the question, and rightly so
    if ((plain_q in plain_a and len(words) >= 3) or (plain_a in plain_q and len(plain_a.split()) >= 3)
            or (len(held) >= 3 and len(novel) < 0.2 * len(held))):
        return "reference_repeats_question"
    if len(words) >= 4 and f" {plain_q} " in f" {_plain(paragraph)} ":
        return "question_copies_paragraph"
    return None


def off_topic(question: str, paragraph: str) -> bool:
    """True when none of the question's content words occurs in its paragraph (or it has none)."""
    words = content_words(question)
    have = set(tokens(paragraph))
    return not any(w in have for w in words)


def filter_rows(dataset: Dataset, rows: list[dict], percentile: float | None = None,
                instruction: frozenset = frozenset()) -> tuple[list[dict], Counter, float]:
    """Rows that pass every filter, the drop count of each filter, and the paragraph-length cut-off used.

    `percentile` overrides `dataset.min_paragraph_percentile` (0: no length cut). `instruction`: the phrases of the
    prompts that asked for the questions (`instruction_phrases`), which a question must not copy.
    Near-duplicate questions are looked for among the rows of one document (`doc_id`).
    """
    percentile = dataset.min_paragraph_percentile if percentile is None else percentile
    dropped = Counter(dict.fromkeys(FILTERS, 0))  # every filter reports its count, zero included
    lengths = [len(r["paragraph"]) for r in rows]
    min_len = float(np.percentile(lengths, percentile)) if lengths and percentile else 0.0
    kept = []
    for r in rows:
        q, a = (r.get("question") or "").strip(), (r.get("answer") or "").strip()
        if len(r["paragraph"]) < min_len:
            dropped["short_paragraph"] += 1
        elif len(q) < dataset.min_question_chars or len(a) < dataset.min_answer_chars:
            dropped["empty_or_malformed"] += 1
        elif any(p in (q + " " + a).lower() for p in dataset.refusal_patterns):
            dropped["refusal"] += 1
        elif dataset.drop_wrong_language and r.get("language") and any(
                matches_language(text, r["language"], top) is False for text, top in ((q, 1), (a, 3))):
            # asked for questions and answers in the paragraph's language; each is checked on its own, since an
            # extractive reference in that language would carry a question in another through a joint check. The
            # question must read as that language first (an English question quoting the document's words ranks
            # it second or third); an answer, often quoting commands and names, among the first three
            dropped["wrong_language"] += 1
        elif dataset.drop_invalid_questions and (why := validity_problem(q, a, r["paragraph"], r.get("language"),
                                                                        instruction)):
            dropped[why] += 1
        elif dataset.drop_off_topic_questions and off_topic(q, r["paragraph"]):
            dropped["off_topic_question"] += 1
        elif support(a, r["paragraph"]) < dataset.min_grounding:
            dropped["ungrounded_answer"] += 1
        else:
            kept.append(r)
    by_doc = defaultdict(list)
    for i, r in enumerate(kept):
        by_doc[r["doc_id"]].append(i)
    vectors = embed(dataset.embedder, [r["question"] for r in kept]) if kept else None
    drop = set()
    for idx in by_doc.values():
        for a_pos, i in enumerate(idx):
            if i in drop:
                continue
            for j in idx[a_pos + 1:]:
                if j not in drop and float(vectors[i] @ vectors[j]) >= dataset.near_duplicate_cosine:
                    drop.add(j)
    dropped["near_duplicate_question"] = len(drop)
    return [r for i, r in enumerate(kept) if i not in drop], dropped, round(min_len, 1)
