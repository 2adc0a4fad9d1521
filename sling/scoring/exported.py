"""The export gate's benchmark figure: every exported form answers the held-out benchmark questions its adapter
answered, and the two answer sets are scored as the score stage scores them.

Per task, the first `export.questions` questions whose reference passed the score stage's check
(`sling.scoring.metrics.check_references`): the adapter's answers are the answer stage's own rows
(results/students/<variant>_<task>.jsonl, scored by `seeded_scores`, the score stage's path); each form answers the
same questions with the same retrieved passages, rendered by the form's own chat template (as a runtime would send
them) and decoded by the answer stage's code (`sling.retrieval.answering.answer_locally`: batched greedy decoding,
`rag.max_new_tokens`, `rag.repetition_penalty`, at `rag.dtype`). The figure is the paired difference of the headline
metric, rescaled cosine, form minus adapter per question, with its bootstrap interval (`sling.scoring.metrics.paired`,
as the report computes differences between variants). The GGUF forms are read through transformers' GGUF loader
(dequantized), not llama.cpp. Entry point: `pipeline/export.py`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from sling.io import read_jsonl
from sling.models.export import Difference, Figures, load_form, rendered
from sling.paths import answers_path, produced, tasks
from sling.retrieval.answering import answer_locally, cast_for_answering
from sling.schema import Eval, Export
from sling.scoring.metrics import check_references, paired, score_answers, seeded_scores, task_references

log = logging.getLogger("export")

HEADLINE = "rescaled"  # rescaled cosine, the report's headline metric


@dataclass(frozen=True)
class HeldOut:
    """One task's questions as the adapter answered them, their references and the adapter's per-question scores."""

    task: str
    rows: list[dict]
    references: list[str]
    reference_vectors: np.ndarray
    adapter: dict[str, np.ndarray]


def held_out(ev: Eval, export: Export, variant: str) -> list[HeldOut]:
    """Per task, the first `export.questions` questions with a checked reference, and the adapter's answers to them
    scored by the score stage's own code."""
    out = []
    for task in tasks():
        all_refs = read_jsonl(produced(answers_path("reference", task), "reference"))
        keep, _ = check_references(all_refs, ev, task)
        first = [i for i, k in enumerate(keep) if k][:export.questions]
        keep = [i in first for i in range(len(keep))]
        refs = task_references(task, all_refs, keep, ev)
        rows, scores = seeded_scores(refs, variant, ev)
        out.append(HeldOut(task, rows, refs.texts, refs.vectors, scores))
    return out


def difference(ev: Eval, seed: int, held: HeldOut, answers: list[str]) -> Difference:
    """A form's answers minus the adapter's on the headline metric, paired per question (bootstrap seeded by `seed`)."""
    retrieved = [[c["text"] for c in r["retrieved"]] for r in held.rows]
    form = score_answers(answers, held.references, retrieved, ev, held.reference_vectors)
    d = paired(held.adapter, form, ev, seed, (HEADLINE,))[HEADLINE]
    return Difference(held.task, d.mean, tuple(d.ci), len(answers), HEADLINE)


def answer_benchmark(cfg: DictConfig, variant: str, forms: dict[str, tuple[Path, str | None]],
                     figures: dict[str, Figures]) -> dict[str, Figures]:
    """`figures` with each form's paired benchmark differences, one per task. The export stage's entry into scoring:
    it reads `model` and `rag` (answering), `eval`, `export` and `seed` (scoring)."""
    held = held_out(cfg.eval, cfg.export, variant)
    out = {}
    for form, (path, file) in forms.items():
        model, tokenizer = load_form(path, file)
        model = cast_for_answering(cfg.model, cfg.rag, model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        found = []
        for h in held:
            t0 = time.perf_counter()
            prompts = [rendered(tokenizer, "\n\n".join(c["text"] for c in r["retrieved"]), r["question"])
                       for r in h.rows]
            answers = answer_locally(cfg.model, cfg.rag, model, tokenizer, prompts)
            found.append(difference(cfg.eval, cfg.seed, h, [r["answer"] for r in answers]))
            log.info("%s on %s: %s %+.3f %s over %d questions (%.0fs)", form, h.task, HEADLINE, found[-1].mean,
                     list(found[-1].ci), found[-1].questions, time.perf_counter() - t0)
        out[form] = replace(figures[form], benchmark=tuple(found))
        del model
    return out
