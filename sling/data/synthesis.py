"""Synthetic questions and answers written by the teacher from the training paragraphs (never the held-out documents),
spread over the documents, in each paragraph's language. Entry point: `pipeline/synthesize.py`.
"""
from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from sling.documents.language import prompt_language, with_question_form
from sling.errors import UserError
from sling.teacher.client import CachedCalls, make_teacher, server_hint

log = logging.getLogger("synthesize")


class SynthesisError(UserError):
    """The synthetic set cannot be written: no training paragraph, or teacher calls that failed; the message says
    what to change."""


def question_prompt(cfg: DictConfig, paragraph: str, index: int, language: str = "English") -> str:
    prompt = cfg.synth.question_prompt.format(paragraph=paragraph, language=language)
    n = cfg.synth.questions_per_paragraph
    return prompt if n == 1 else f"{prompt}\n\n(Question {index + 1} of {n}: ask about a different point than the others.)"


def training_paragraphs(paragraphs: list[dict], split: dict) -> list[dict]:
    """The paragraphs of the training documents only: no held-out benchmark document reaches the training set."""
    held_out = set(split["benchmark"])
    kept = [p for p in paragraphs if p["doc_id"] not in held_out]
    if held_out:
        log.info("%d of %d paragraphs are from the %d training documents (%d held out for the benchmark)",
                 len(kept), len(paragraphs), len(split["train"]), len(held_out))
    if not kept:
        raise SynthesisError(f"no paragraph left from the training documents ({len(paragraphs)} paragraphs, all held out "
                             f"for the benchmark): add documents or lower data.split.benchmark_fraction")
    return kept


def spread(paragraphs: list[dict], n: int) -> list[dict]:
    """At most `n` paragraphs taken in turn from each document (reading order within each), so a capped run still
    writes from every training document instead of only the first one's opening pages."""
    by_doc: dict[str, list[dict]] = {}
    for p in paragraphs:
        by_doc.setdefault(p["doc_id"], []).append(p)
    queues = list(by_doc.values())
    picked = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)][:n]
    order = {id(p): k for k, p in enumerate(paragraphs)}
    return sorted(picked, key=lambda p: order[id(p)])


def synthesize(cfg: DictConfig, paragraphs: list[dict]) -> tuple[list[dict], dict]:
    teacher = make_teacher(cfg)
    calls = CachedCalls(cfg, teacher, cfg.synth.prompt_version)
    n_q = cfg.synth.questions_per_paragraph
    items = [(p, i) for p in paragraphs for i in range(n_q)]
    started = time.perf_counter()
    questions = calls.run([with_question_form(question_prompt(cfg, p["text"], i, prompt_language(p)), p)
                           for p, i in items], "questions")
    answerable = [(k, q) for k, q in enumerate(questions) if q]
    answers_for = calls.run([cfg.synth.answer_prompt.format(paragraph=items[k][0]["text"], question=q,
                                                            language=prompt_language(items[k][0]))
                             for k, q in answerable], "answers")
    answers: list[str | None] = [None] * len(items)
    for (k, _), a in zip(answerable, answers_for):
        answers[k] = a
    rows = []
    for (p, i), q, a in zip(items, questions, answers):
        if q is None or a is None:
            continue
        rows.append({"doc_id": p["doc_id"], "document": p["document"], "language": p.get("language"),
                     "page": p["page"], "para_num": p["para_num"],
                     "paragraph_hash": p["paragraph_hash"], "paragraph": p["text"], "question_index": i,
                     "question": q, "answer": a, "teacher": teacher.name,
                     "prompt_version": cfg.synth.prompt_version, "seed": cfg.seed})
    elapsed = time.perf_counter() - started
    u = calls.usage
    t = cfg.teacher
    cost = (u["prompt_tokens"] * t.price_in_per_mtok + u["completion_tokens"] * t.price_out_per_mtok) / 1e6
    stats = {"paragraphs": len(paragraphs), "items": len(items), "rows": len(rows), "calls": u["calls"],
             "cache_hits": u["cache_hits"], "failed_calls": u["failed_calls"], "prompt_tokens": u["prompt_tokens"],
             "completion_tokens": u["completion_tokens"], "estimated_cost_usd": round(cost, 6),
             "rows_per_s": round(len(rows) / elapsed, 3) if elapsed else 0.0, "teacher": teacher.name}
    if calls.failures:
        raise SynthesisError(f"{len(calls.failures)} teacher calls failed after {t.max_retries} retries "
                             f"(first: {calls.failures[0]}){server_hint(teacher)}; the {u['calls']} finished calls are "
                             "cached, re-run to retry")
    return rows, stats

