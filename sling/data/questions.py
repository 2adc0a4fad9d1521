"""Candidate questions, then selection: what the synthetic set and the generated benchmark share.

A paragraph gets several candidates (`samples_per_paragraph`), one per question type in turn (factoid, definition,
how/why, comparison: `QUESTION_TYPES`, each a prompt under `TYPES_VERSION`); a type's first candidate is greedy,
later ones are sampled at `sample_temperature`, and every sample is cached like any teacher call. The filters
(sling.teacher.quality) then drop the invalid ones, and `select` keeps the best valid ones per paragraph.

No prompt holds a sentence written for one language. The teacher is asked for the paragraph's language by name,
and a later round shows it questions it already wrote in that language that passed every check (`examples`): the
form to follow comes from the run's own material, whatever the language.

References that cannot invent (`extractive_reference`): the sentences of the paragraph closest to the question
(embedding cosine), in reading order, so a reference is grounded by construction.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from sling.documents.language import prompt_language
from sling.embed import embed
from sling.teacher.quality import instruction_phrases
from sling.text import sentences

TYPES_VERSION = "types-v1"
_TAIL = " Reply with the question only, ending with a question mark.\n\nText: {paragraph}"
QUESTION_TYPES = {
    "factoid": "Read the text below and write one question in {language} that asks for a specific fact the text "
               "states (a name, a number, a value, a command or a place), naming its subject so that the question "
               "makes sense without the text." + _TAIL,
    "definition": "Read the text below and write one question in {language} that asks what a term, tool or thing "
                  "the text defines or describes is, naming it." + _TAIL,
    "how_why": "Read the text below and write one question in {language} that asks how something the text describes "
               "works or is done, or why it happens, naming it." + _TAIL,
    "comparison": "Read the text below and write one question in {language} that asks how two things the text "
                  "mentions differ or relate, naming both." + _TAIL,
}
MULTIHOP_PROMPT = ("Read the two texts below and write one question in {language} that needs a fact from Text 1 and "
                   "a fact from Text 2 to answer, naming what it asks about. Reply with the question only, ending "
                   "with a question mark.\n\nText 1: {first}\n\nText 2: {second}")
EXAMPLES = "\n\nQuestions written before in {language}, for their form only:\n{examples}"
# A candidate question is the reply up to its question mark (of any script): decoding stops there, instead of
# running on through the answer a small model writes after it.
QUESTION_STOP = ["?", "\uff1f", "\u061f"]



def instruction(question_prompt: str) -> frozenset:
    """The phrases of every prompt that asks for a question (the section's own `question_prompt`, each type's, the
    multi-hop one and the examples' lead-in), which a kept question must not copy (quality.validity_problem)."""
    return instruction_phrases([question_prompt, *QUESTION_TYPES.values(), MULTIHOP_PROMPT, EXAMPLES])


def type_prompt(name: str, question_prompt: str) -> str:
    """The prompt of a question type; `plain` is the section's own `question_prompt`."""
    if name == "plain":
        return question_prompt
    if name not in QUESTION_TYPES:
        raise KeyError(name)
    return QUESTION_TYPES[name]


def plan(samples: int, types: list[str], offset: int = 0) -> list[tuple[str, int]]:
    """(question type, sample number) of each of a paragraph's candidates: the types in turn, from the `offset`-th
    (the paragraph's place: fewer samples than types still ask every type across paragraphs); sample 0 of a type is
    its greedy reply, later numbers are sampled. No types: the section's own prompt (`plain`)."""
    kinds = list(types) or ["plain"]
    return [(kinds[(j + offset) % len(kinds)], j // len(kinds)) for j in range(samples)]


def with_examples(prompt: str, language: str, examples: list[str]) -> str:
    if not examples:
        return prompt
    return prompt + EXAMPLES.format(language=language, examples="\n".join(f"- {q}" for q in examples))


def ask(calls, items: list[tuple[str, int]], temperature: float, desc: str,
        stop: list[str] | None = QUESTION_STOP, max_tokens: int | None = None) -> list[str | None]:
    """Each (prompt, sample number)'s reply: sample 0 greedy, the others at `temperature`; None for a failed call.
    An embedded teacher's reply ends at its question mark (`stop`), or after `max_tokens` (teacher.question_max_tokens)."""
    out: list[str | None] = [None] * len(items)
    greedy = [i for i, (_, s) in enumerate(items) if s == 0]
    sampled = [i for i, (_, s) in enumerate(items) if s > 0]
    for i, reply in zip(greedy, calls.run([items[i][0] for i in greedy], desc, stop=stop, max_tokens=max_tokens)):
        out[i] = reply
    if sampled:
        replies = calls.run([items[i][0] for i in sampled], desc + " (sampled)", temperature,
                            [items[i][1] for i in sampled], stop, max_tokens)
        for i, reply in zip(sampled, replies):
            out[i] = reply
    return out


# What a small teacher wraps its question in, in any language: a one-word label ("Question:", "Q 2:", "Frage:"), a
# list marker ("1.", "2.2.", "-", "(3)") or surrounding quotes.
_LABEL = re.compile(r"^[^\W\d_]{1,12}(?:\s*\d+)?\s*[:\uff1a]\s+")
_MARKER = re.compile(r"^(?:[-*\u2022\u00b7>]+|\(?\d+(?:\.\d+)*[.)]?)\s+")
_OPENERS = "\u00bf\u00a1([\"'\u201c\u00ab\u201e"
_QUOTES = "\"'\u201c\u201d\u00ab\u00bb\u201e`*"
# A lead-in of up to four words before a colon ("How about this:", "Voici ma question :"), taken off when a new
# sentence (a capital letter, perhaps after a quote) follows it.
_LEAD_IN = re.compile(r"^(?:[^\W\d_]+[\s,]+){0,3}[^\W\d_]+\s*[:\uff1a]\s+")
# A sentence end inside the line, before a capital: "What a great question! How does X work?" asks the second part.
_SENTENCE_END = re.compile(r"(?<=[.!\u3002\uff01])\s+(?=[^\w\s]?[^\W\d_])")


def _unwrap(line: str) -> str:
    for _ in range(4):  # "1. Question: "What ...?"" and "Great question! How about this: "What ...?"" unwrap in turn
        before = line
        line = _MARKER.sub("", _LABEL.sub("", line)).strip(_QUOTES + " ")
        lead = _LEAD_IN.match(line)
        if lead and line[lead.end():].lstrip(_OPENERS + _QUOTES)[:1].isupper():
            line = line[lead.end():].strip(_QUOTES + " ")
        if line.endswith(tuple(QUESTION_STOP)):
            parts = [p for p in _SENTENCE_END.split(line) if p]
            asks = [i for i, p in enumerate(parts) if p.lstrip(_OPENERS)[:1].isupper()]
            # the last sentence that starts with a capital, with whatever follows it, when what precedes is no question
            if (len(parts) > 1 and asks and asks[-1] > 0
                    and not any(p.endswith(tuple(QUESTION_STOP)) for p in parts[:asks[-1]])):
                line = " ".join(parts[asks[-1]:])
        if line == before:
            break
    return line


def clean_question(text: str) -> str:
    """The question as one line, whitespace collapsed: the reply's first line that ends with a question mark (of any
    script), else its first non-empty line (a teacher often wraps its question in a preamble, or follows it with an
    answer or a second question); a label, list marker or quotes around it are taken off, and so is a sentence or a
    short lead-in before it on its line ("What a great question! How ...?" and "How about this: "How ...?"" ask
    "How ...?"). Nothing is written for one language: labels are any one word before a colon, lead-ins up to four
    words before a colon and a capital letter, sentences end at . or ! before a capital letter of any cased script."""
    lines = [_unwrap(" ".join(line.split())) for line in (text or "").splitlines() if line.strip()]
    lines = [line for line in lines if line]
    return next((line for line in lines if line.endswith(tuple(QUESTION_STOP))), lines[0] if lines else "")


def reference_parts(calls, kind: str, embedder: str, answer_prompt: str, asked: list[tuple[list[dict], str]],
                    desc: str) -> list[list[str] | None]:
    """The reference of each (source paragraphs, question), the one place that chooses how: `extractive`, one part
    per source paragraph (its sentences closest to the question, `extractive_parts`: the hop check reads them), or
    the teacher's answer from the sources (`answer_prompt`) as one part; None where the teacher's call failed."""
    if kind == "extractive":
        return extractive_parts(embedder, [q for _, q in asked], [[p["text"] for p in ps] for ps, _ in asked])
    replies = calls.run([answer_prompt.format(paragraph="\n\n".join(p["text"] for p in ps), question=q,
                                              language=prompt_language(ps[0])) for ps, q in asked], desc)
    return [None if a is None else [a] for a in replies]


def extractive_reference(embedder: str, questions: list[str], sources: list[list[str]],
                         min_chars: int = 60, max_sentences: int = 2) -> list[str]:
    """Per question, the sentences of its source paragraph(s) that answer it best (`extractive_parts`), joined."""
    return [" ".join(parts) for parts in extractive_parts(embedder, questions, sources, min_chars, max_sentences)]


def extractive_parts(embedder: str, questions: list[str], sources: list[list[str]],
                     min_chars: int = 60, max_sentences: int = 2) -> list[list[str]]:
    """Per question, one part per source paragraph: the sentence closest to the question by embedding cosine, and,
    while the part is shorter than `min_chars`, the next closest (at most `max_sentences`), in reading order. Every
    word comes from its source."""
    if not questions:
        return []
    splits = [[sentences(p) or [p] for p in srcs] for srcs in sources]
    flat = [s for per_q in splits for per_src in per_q for s in per_src]
    vectors = embed(embedder, list(questions) + flat)
    q_v, s_v = vectors[:len(questions)], vectors[len(questions):]
    out, k = [], 0
    for i, per_q in enumerate(splits):
        parts = []
        for per_src in per_q:
            sims = s_v[k:k + len(per_src)] @ q_v[i]
            k += len(per_src)
            chosen: list[int] = []
            for j in np.argsort(-sims, kind="stable"):
                chosen.append(int(j))
                if len(chosen) >= max_sentences or sum(len(per_src[c]) for c in chosen) >= min_chars:
                    break
            parts.append(" ".join(per_src[c] for c in sorted(chosen)))
        out.append(parts)
    return out


def select(rows: list[dict], cap: int, group: str = "paragraph_hash", rank: str | None = None) -> list[dict]:
    """At most `cap` rows per `group` (a paragraph, or a pair of them), the best first: the lowest `rank` (e.g. the
    BM25 rank of the source), then a type not yet taken, then the order they were written in. The rows keep their
    order otherwise."""
    by_group: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_group.setdefault(r[group], []).append(i)
    keep: set[int] = set()
    for idx in by_group.values():
        ordered = sorted(idx, key=lambda i: (rows[i].get(rank) or 0) if rank else 0)
        taken: list[int] = []
        types: set = set()
        for i in ordered:  # a type not yet taken first
            if len(taken) < cap and rows[i].get("question_type") not in types:
                taken.append(i)
                types.add(rows[i].get("question_type"))
        for i in ordered:
            if len(taken) < cap and i not in taken:
                taken.append(i)
        keep.update(taken)
    return [r for i, r in enumerate(rows) if i in keep]


def examples_by_language(rows: list[dict], n: int) -> dict[str, list[str]]:
    """Up to `n` kept questions per language (the shortest first: a plain form to follow)."""
    out: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: (len(r["question"]), r["question"])):
        lang = r.get("language") or ""
        if len(out.setdefault(lang, [])) < n and r["question"] not in out[lang]:
            out[lang].append(r["question"])
    return out


def type_mix(rows: list[dict]) -> dict[str, int]:
    """How many rows of each question type."""
    return dict(sorted(Counter(r.get("question_type") or "plain" for r in rows).items()))
