"""Stage synthesize: paragraphs -> synthetic question/answer pairs written by a teacher.

    python -m pipeline.synthesize                                      # reads params.yaml
    OPENAI_API_KEY=... python -m pipeline.synthesize teacher=openai teacher.base_url=http://localhost:8000/v1

Per paragraph the paper's two steps: the teacher writes a question the paragraph answers, then answers
it from the paragraph alone (prompts and their version in conf/synth), both in the language ingest detected for
the paragraph's document. Every reply is cached by content
(teacher, prompt version, prompt, generation parameters) the moment it arrives, so a re-run or a resume
after a crash asks nothing twice. With `data.domain_source=sai_csv` the paper's own synthetic set is
imported instead of calling a teacher.
"""
from __future__ import annotations

import logging
import time

from omegaconf import DictConfig, OmegaConf

from pipeline.cli import run
from pipeline.config import UserError, load_config, resolve_path
from pipeline.importers import read_sai_csv
from pipeline.paths import PARAGRAPHS, SPLIT, SYNTHETIC
from pipeline.io import provenance, read_json, read_jsonl, write_json, write_jsonl
from pipeline.language import prompt_language, with_question_form
from pipeline.teacher import CachedCalls, make_teacher
from pipeline.tracking import log_dataset, log_metrics, stage_run

log = logging.getLogger("synthesize")

OUT = SYNTHETIC
METRICS = "metrics/synthesize.json"


class SynthesisError(UserError):
    pass


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
                             f"(first: {calls.failures[0]}); the {u['calls']} finished calls are cached, re-run to retry")
    return rows, stats


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("synthesize", cfg):
        if cfg.data.domain_source == "sai_csv":
            rows, skipped = read_sai_csv(resolve_path(cfg.data.sai_csv))
            for r in rows:
                r.update(teacher="paper:gpt-4", prompt_version="paper", seed=cfg.seed, question_index=0)
            stats = {"rows": len(rows), "imported_from": str(cfg.data.sai_csv), "skipped_malformed": sum(skipped.values()),
                     "skipped_by_reason": dict(skipped), "calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                     "estimated_cost_usd": 0.0}
        else:
            if not resolve_path(SPLIT).exists():
                raise SynthesisError(f"{resolve_path(SPLIT)} is missing: the benchmark stage writes which documents "
                                     "train; run it first (`dvc repro synthesize` runs both)")
            paragraphs = training_paragraphs(read_jsonl(resolve_path(PARAGRAPHS)), read_json(resolve_path(SPLIT)))
            if cfg.synth.max_paragraphs:
                paragraphs = spread(paragraphs, cfg.synth.max_paragraphs)
            rows, stats = synthesize(cfg, paragraphs)
        if not rows:
            raise SynthesisError("the teacher produced no question/answer pair; see the warnings above")
        write_jsonl(resolve_path(OUT), rows)
        write_json(resolve_path(METRICS), stats)
        write_json(resolve_path("data/synthetic/provenance.json"), provenance(
            "synthesize", {"synth": OmegaConf.to_container(cfg.synth, resolve=True),
                           "teacher": {k: v for k, v in OmegaConf.to_container(cfg.teacher, resolve=True).items()}},
            {"paragraphs": resolve_path(PARAGRAPHS), "split": resolve_path(SPLIT)} if cfg.data.domain_source == "synthesize" else {}))
        log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))}, prefix="synth.")
        log_dataset(resolve_path(OUT), "synthetic-qa", "source")
        log.info("%d rows: %s", len(rows), stats)


if __name__ == "__main__":
    run(main)
