"""Synthetic questions and answers written by the teacher from the training paragraphs (never the held-out documents),
spread over the documents, in each paragraph's language. Entry point: `pipeline/synthesize.py`.
"""
from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from sling.data.questions import (
    QUESTION_STOP,
    ask,
    clean_question,
    examples_by_language,
    instruction,
    plan,
    reference_parts,
    type_mix,
    type_prompt,
    with_examples,
)
from sling.documents.language import prompt_language
from sling.errors import UserError
from sling.schema import Rag, Synth, Teacher
from sling.teacher.client import CachedCalls, make_teacher, server_hint
from sling.teacher.quality import filter_rows

log = logging.getLogger("synthesize")


class SynthesisError(UserError):
    """The synthetic set cannot be written: no training paragraph, or teacher calls that failed; the message says
    what to change."""


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


def long_enough(paragraphs: list[dict], min_chars: int) -> list[dict]:
    """The paragraphs of at least `min_chars` characters (synth.min_paragraph_chars), the others counted in the log."""
    kept = [p for p in paragraphs if len(p["text"]) >= min_chars]
    if len(kept) < len(paragraphs):
        log.info("%d of %d training paragraphs are shorter than synth.min_paragraph_chars (%d): not asked",
                 len(paragraphs) - len(kept), len(paragraphs), min_chars)
    if not kept:
        raise SynthesisError(f"every one of the {len(paragraphs)} training paragraphs is shorter than "
                             f"synth.min_paragraph_chars ({min_chars}): lower it")
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


def candidates(synth: Synth, teacher: Teacher, rag: Rag, seed: int, calls, paragraphs: list[dict], examples: dict,
               desc: str) -> list[dict]:
    """Each paragraph's candidate questions (sling.data.questions.plan) with their answers: the teacher's from the
    paragraph (`synth.answer_prompt`) or the paragraph's own closest sentences (`synth.reference: extractive`)."""
    several = synth.samples_per_paragraph > 1 or bool(synth.question_types)
    items, meta = [], []
    for n, p in enumerate(paragraphs):
        language = prompt_language(p)
        for j, (qtype, sample) in enumerate(plan(synth.samples_per_paragraph, list(synth.question_types), n)):
            prompt = type_prompt(qtype, synth.question_prompt).format(paragraph=p["text"], language=language)
            items.append((with_examples(prompt, language, examples.get(p.get("language") or "", [])), sample))
            meta.append((p, j, qtype, sample))
    questions = ask(calls, items, synth.sample_temperature, desc, stop=QUESTION_STOP if several else None,
                    max_tokens=teacher.question_max_tokens if several else None)
    if several:  # a small teacher follows its question with more lines; one candidate is its first line
        questions = [clean_question(q) if q else q for q in questions]
    asked = [(m, q) for m, q in zip(meta, questions) if q]
    answers = [None if parts is None else " ".join(parts) for parts in
               reference_parts(calls, synth.reference, rag.embedder, synth.answer_prompt,
                               [([m[0]], q) for m, q in asked], "answers")]
    rows = []
    for ((p, j, qtype, sample), q), a in zip(asked, answers):
        if a is None:
            continue
        rows.append({"doc_id": p["doc_id"], "document": p["document"], "language": p.get("language"),
                     "page": p["page"], "para_num": p["para_num"],
                     "paragraph_hash": p["paragraph_hash"], "paragraph": p["text"], "question_index": j,
                     **({"question_type": qtype, "sample": sample} if several else {}),
                     "question": q, "answer": a, "teacher": calls.teacher.name,
                     "prompt_version": synth.prompt_version, "seed": seed})
    return rows


def synthesize(cfg: DictConfig, paragraphs: list[dict]) -> tuple[list[dict], dict]:
    """The candidate rows of every paragraph; with `synth.examples`, a second round for the paragraphs none of whose
    candidates passes the checks, its prompts showing questions that did pass in the paragraph's language. The
    synthesize stage's entry: it takes the whole config, as it reads `synth`, `teacher`, `model`, `dataset`, `rag`,
    `seed` and `cache_dir`."""
    teacher = make_teacher(cfg.teacher, cfg.model)
    calls = CachedCalls(cfg.cache_dir, teacher, cfg.synth.prompt_version)
    started = time.perf_counter()
    rows = candidates(cfg.synth, cfg.teacher, cfg.rag, cfg.seed, calls, paragraphs, {}, "questions")
    second = 0
    if cfg.synth.examples and rows:
        kept, _, _ = filter_rows(cfg.dataset, rows, percentile=0, instruction=instruction(cfg.synth.question_prompt))
        examples = examples_by_language(kept, cfg.synth.examples)
        gave = {r["paragraph_hash"] for r in kept}
        retry = [p for p in paragraphs if p["paragraph_hash"] not in gave and examples.get(p.get("language") or "")]
        if retry:
            more = candidates(cfg.synth, cfg.teacher, cfg.rag, cfg.seed, calls, retry, examples,
                              "questions (with examples)")
            second = len(more)
            rows += [r | {"round": 2} for r in more]
    elapsed = time.perf_counter() - started
    u = calls.usage
    t = cfg.teacher
    cost = (u["prompt_tokens"] * t.price_in_per_mtok + u["completion_tokens"] * t.price_out_per_mtok) / 1e6
    stats = {"paragraphs": len(paragraphs), "items": len(paragraphs) * cfg.synth.samples_per_paragraph,
             "rows": len(rows), "calls": u["calls"],
             "cache_hits": u["cache_hits"], "failed_calls": u["failed_calls"], "prompt_tokens": u["prompt_tokens"],
             "completion_tokens": u["completion_tokens"], "estimated_cost_usd": round(cost, 6),
             "rows_per_s": round(len(rows) / elapsed, 3) if elapsed else 0.0, "teacher": teacher.name}
    if cfg.synth.samples_per_paragraph > 1 or cfg.synth.question_types or cfg.synth.examples:
        stats |= {"question_types": type_mix(rows), "reference": cfg.synth.reference, "second_round_rows": second}
    if calls.failures:
        raise SynthesisError(f"{len(calls.failures)} teacher calls failed after {t.max_retries} retries "
                             f"(first: {calls.failures[0]}){server_hint(teacher)}; the {u['calls']} finished calls are "
                             "cached, re-run to retry")
    return rows, stats
