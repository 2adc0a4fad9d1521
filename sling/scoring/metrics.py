"""Scoring answers against references: cosine with a shuffled baseline and its rescaled form, token F1, ROUGE-L,
grounding in the retrieved chunks, retrieval recall, controls that check the metrics discriminate, paired
differences (pooled over training seeds when there are several) and power. Entry point: `pipeline/score.py`.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sling.config import resolve_path
from sling.errors import InputError
from sling.io import read_json, read_jsonl
from sling.embed import embed
from sling.paths import ANSWER_METRICS, answers_path, seeded, tasks
from sling.schema import Eval, Train
from sling.scoring.stats import (
    bootstrap_ci,
    detectable_difference,
    questions_for,
    questions_needed,
    two_level_ci,
)
from sling.text import sentences, support, tokens

log = logging.getLogger("score")


TEMPLATE_ECHO = re.compile(r"###\s*(instruction|input|response)\s*:|<\|im_(start|end)\|>|<\|endoftext\|>", re.I)


PER_QUESTION = ("cosine", "rescaled", "discriminated", "token_f1", "token_f1_rescaled", "rouge_l", "rouge_l_rescaled",
                "grounding")


# Metrics a model must beat the floor control on (a shuffled reference) before its score means anything.
CHECKED = ("cosine", "rescaled", "token_f1", "token_f1_rescaled", "rouge_l", "rouge_l_rescaled")


def token_f1(answer: str, reference: str) -> float:
    a, r = tokens(answer), tokens(reference)
    common = sum((Counter(a) & Counter(r)).values())
    if not a or not r or not common:
        return 0.0
    p, rec = common / len(a), common / len(r)
    return 2 * p * rec / (p + rec)


def rouge_l(answer: str, reference: str, scorer=None) -> float:
    from rouge_score import rouge_scorer

    if not answer.strip() or not reference.strip():
        return 0.0
    return (scorer or rouge_scorer.RougeScorer(["rougeL"])).score(reference, answer)["rougeL"].fmeasure


def with_baseline(metric, answers: list[str], references: list[str]) -> tuple[np.ndarray, float]:
    """Each answer's score against its own reference, and the shuffled baseline: the mean score of every answer
    against every other question's reference. Lexical metrics need it as much as cosine does: references of one
    benchmark share their vocabulary, so a wrong answer on the topic already scores well above zero."""
    n = len(answers)
    matrix = np.array([[metric(a, r) for r in references] for a in answers]) if n else np.zeros((0, 0))
    own = np.diag(matrix).copy()
    baseline = float((matrix.sum() - own.sum()) / (n * (n - 1))) if n > 1 else 0.0
    return own, baseline


def rescale(own: np.ndarray, baseline: float) -> np.ndarray:
    """(x - b) / (1 - b): 0 is no better than an answer to another question, 1 is the reference itself."""
    return (own - baseline) / (1 - baseline) if baseline < 1 else np.zeros(len(own))


def grounding(answer: str, chunks: list[str], threshold: float) -> float:
    """Share of answer sentences whose content words are mostly found in the retrieved chunks."""
    sents = sentences(answer)
    if not sents:
        return 0.0
    context = "\n".join(chunks)
    return sum(support(s, context) >= threshold for s in sents) / len(sents)


def despaced_overlap(source: str, chunk: str, width: int = 12) -> float:
    """Share of the source's character shingles (letters and digits only) found in the chunk.

    The paper's source paragraphs lost most spaces in extraction ("Ascientifi ccreativit y"), so word
    overlap misses them; with spacing and punctuation removed both sides compare again.
    """
    src, text = re.sub(r"[^a-z0-9]", "", source.lower()), re.sub(r"[^a-z0-9]", "", chunk.lower())
    shingles = [src[i:i + width] for i in range(0, max(len(src) - width, 0) + 1, width // 2)]
    return sum(sh in text for sh in shingles) / len(shingles) if src else 0.0


def source_rank(source: str, retrieved: list[dict], threshold: float = 0.6) -> int | None:
    """1-based rank of the first chunk that holds most of the source paragraph, or that is mostly cut from it (a
    paragraph longer than `rag.chunk_tokens` spans several chunks, none of which holds most of it), else None."""
    if not source.strip():
        return None
    for rank, chunk in enumerate(retrieved, 1):
        text = chunk["text"]
        if (support(source, text) >= threshold or despaced_overlap(source, text) >= threshold
                or despaced_overlap(text, source) >= threshold):
            return rank
    return None


def retrieval_metrics(sources: list[str], retrieved: list[list[dict]], top_k: int, ev: Eval,
                      seed: int) -> tuple[dict, list]:
    """recall@k and MRR of the source paragraphs among the retrieved chunks; and each question's rank."""
    ranks = [source_rank(src, r) for src, r in zip(sources, retrieved)]
    known = [rk for rk, src in zip(ranks, sources) if src.strip()]
    if not known:
        return {}, ranks
    hits = np.array([rk is not None for rk in known], dtype=float)
    rr = np.array([1 / rk if rk else 0.0 for rk in known])
    return {f"recall_at_{top_k}": round(float(hits.mean()), 4),
            "recall_ci": bootstrap_ci(hits, ev.bootstrap, ev.ci, seed),
            "mrr": round(float(rr.mean()), 4), "questions_with_source": len(known)}, ranks


def shuffled(items: list, seed: int) -> list:
    """A derangement by rotation after a seeded shuffle: no item stays at its own position."""
    if len(items) < 2:
        return list(items)
    order = np.random.default_rng(seed).permutation(len(items))
    rotated = np.roll(order, 1)
    out = [None] * len(items)
    for i, j in zip(order, rotated):
        out[i] = items[j]
    return out


def score_answers(answers: list[str], references: list[str], retrieved: list[list[str]], ev: Eval,
                  ref_vectors=None) -> dict[str, np.ndarray]:
    """Per-question metrics of one answer list against the references."""
    ref_v = ref_vectors if ref_vectors is not None else embed(ev.embedder, references)
    ans_v = embed(ev.embedder, [a if a.strip() else " " for a in answers])
    sim = ans_v @ ref_v.T  # sim[i, j]: answer i vs reference j
    n = len(answers)
    own = np.diag(sim)
    off = (sim.sum(axis=1) - own) / max(n - 1, 1)
    baseline = float(off.mean()) if n > 1 else 0.0
    empty = np.array([not a.strip() for a in answers])
    own = np.where(empty, 0.0, own)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    f1, f1_base = with_baseline(token_f1, answers, references)
    rl, rl_base = with_baseline(lambda a, r: rouge_l(a, r, scorer), answers, references)
    return {"cosine": own, "baseline": np.full(n, baseline), "rescaled": rescale(own, baseline),
            "discriminated": np.array([not empty[i] and int(np.argmax(sim[i])) == i for i in range(n)], dtype=float),
            "token_f1": f1, "token_f1_baseline": np.full(n, f1_base), "token_f1_rescaled": rescale(f1, f1_base),
            "rouge_l": rl, "rouge_l_baseline": np.full(n, rl_base), "rouge_l_rescaled": rescale(rl, rl_base),
            "grounding": np.array([grounding(a, c, ev.grounding_threshold) for a, c in zip(answers, retrieved)])}


def summarise(per_q: dict[str, np.ndarray], ev: Eval, seed: int) -> dict:
    """Means with intervals. A metric's values are per question, or (seeds x questions) when the variant was trained
    with several seeds: the mean pools them and the interval resamples seeds, then questions (sling.scoring.stats)."""
    out = {k: round(float(np.ravel(per_q[k])[0]), 4) if np.size(per_q[k]) else None
           for k in ("baseline", "token_f1_baseline", "rouge_l_baseline")}
    for k in PER_QUESTION:
        v = per_q[k]
        out[k] = round(float(v.mean()), 4)
        out[f"{k}_ci"] = two_level_ci(v, ev.bootstrap, ev.ci, seed)
    return out


def score_controls(references: list[str], retrieved: list[list[str]], ev: Eval, seed: int, ref_vectors) -> dict:
    """Ceiling (reference as answer), floor (a shuffled reference) and the empty answer, scored like a model."""
    controls = {"reference_as_answer": references, "shuffled_reference": shuffled(references, seed),
                "empty_answer": [""] * len(references)}
    return {name: summarise(score_answers(answers, references, retrieved, ev, ref_vectors), ev, seed)
            for name, answers in controls.items()}


def soundness(models: dict[str, dict], controls: dict) -> dict:
    """Per metric: does every model score above the floor control (a shuffled reference)? A metric whose floor is
    not below the models cannot tell an answer from an answer to another question, and is flagged, not trusted."""
    out = {}
    for k in CHECKED:
        floor = controls["shuffled_reference"][k]
        below = sorted(name for name, m in models.items() if m[k] <= floor)
        out[k] = {"floor": floor, "sound": not below, "at_or_below_floor": below}
    return out


PAIRED = ("cosine", "rescaled", "token_f1", "token_f1_rescaled", "rouge_l", "rouge_l_rescaled", "grounding")


@dataclass
class PairedDifference:
    """One metric's paired difference (b minus a, per question): the mean, its bootstrap interval and the smallest
    difference this many questions could detect; with several training seeds, each seed's mean and interval too, and
    the seeds they come from (in that order) where the caller knows them."""

    mean: float
    ci: list[float]
    detectable: float
    per_seed: list[float] | None = None
    per_seed_ci: list[list[float]] | None = None
    seeds: list[int] | None = None

    def as_dict(self) -> dict:
        """As the score files hold it: the per-seed fields only where there are several seeds."""
        return {k: v for k, v in asdict(self).items() if v is not None or k not in ("per_seed", "per_seed_ci", "seeds")}


def paired(a: dict[str, np.ndarray], b: dict[str, np.ndarray], ev: Eval, seed: int,
           metrics=PAIRED) -> dict[str, PairedDifference]:
    """b minus a, per question, on each metric (sling.scoring.stats' seed-aware interval)."""
    out = {}
    for k in metrics:
        d = np.atleast_2d(b[k]) - np.atleast_2d(a[k])  # seeds x questions; one untrained side pairs with every seed
        ci = two_level_ci(d, ev.bootstrap, ev.ci, seed)
        out[k] = PairedDifference(round(float(d.mean()), 4), ci, detectable_difference(ci, ev.ci))
        if d.shape[0] > 1:  # each seed alone too, resampling questions: what one training run would have claimed
            out[k].per_seed = [round(float(x), 4) for x in d.mean(axis=1)]
            out[k].per_seed_ci = [bootstrap_ci(row, ev.bootstrap, ev.ci, seed) for row in d]
    return out


def paired_differences(per_variant_q: dict[str, dict[str, np.ndarray]], ev: Eval, seed: int,
                       seeds: dict[str, list[int]] | None = None) -> dict:
    """Each later variant minus each earlier one, per question, with bootstrap intervals of the mean, as the score
    files hold them. With `seeds` (each variant's training seeds, in the order of its rows), a difference over
    several seeds names them, in the order of its `per_seed` values."""
    names, out = list(per_variant_q), {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pair = paired(per_variant_q[a], per_variant_q[b], ev, seed)
            labels = max((seeds or {}).get(b, []), (seeds or {}).get(a, []), key=len)
            for d in pair.values():
                if d.per_seed is not None and len(labels) == len(d.per_seed):
                    d.seeds = labels
            out[f"{b}-{a}"] = {k: d.as_dict() for k, d in pair.items()}
    return out


def power(result: dict, ev: Eval) -> dict:
    """What this task's question count can tell: the smallest paired difference in rescaled cosine it detects (the
    widest over the tuned variants' differences to the base), whether a verdict may be given at all (at least
    `eval.min_questions` questions), and how many questions would detect `eval.target_difference`."""
    n = result["questions"]
    widths = [d["rescaled"]["detectable"] for pair, d in result["paired"].items() if pair.endswith("-base")]
    widths = [w for w in widths if w == w] or [d["rescaled"]["detectable"] for d in result["paired"].values()]
    detectable = max(widths) if widths else None
    if n < 2 or not detectable:
        # One question (or differences that do not vary) gives an interval of no width, not a spread: the count
        # needed is sized with the prior spread eval.paired_sd instead, as a generated benchmark is.
        detectable, need = None, questions_needed(ev.target_difference, ev.paired_sd, ev.ci)
    else:
        need = questions_for(ev.target_difference, detectable, n)
    return {"questions": n, "min_questions": ev.min_questions, "verdict_allowed": n >= ev.min_questions,
            "detectable_rescaled": detectable, "target_difference": ev.target_difference,
            "questions_for_target": need}


def reference_problem(text: str, max_tokens: int | None) -> str | None:
    """Why a reference answer cannot be trusted as one, or None: empty, a prompt template echoed back, the same
    line or sentence repeated (a generation loop), or far longer than any answer it is compared with."""
    text = text.strip()
    if not text:
        return "empty"
    if TEMPLATE_ECHO.search(text):
        return "template_echo"
    units = Counter(" ".join(u.split()).lower() for u in re.split(r"\n+|(?<=[.!?])\s+", text) if len(u.split()) >= 4)
    if units and units.most_common(1)[0][1] >= 2:
        return "repeated_line"
    if max_tokens is not None and len(text.split()) * 4 / 3 > max_tokens:  # ~4/3 tokens per English word
        return "too_long"
    return None


def check_references(ref_rows: list[dict], ev: Eval, task: str) -> tuple[list[bool], dict]:
    """Which references are scored, and the count of each reason the others are left out (named by id)."""
    problems = {r["id"]: reference_problem(r["answer"], ev.max_reference_tokens) for r in ref_rows}
    bad = {qid: why for qid, why in problems.items() if why}
    if bad:
        log.warning("%s: %d reference answer(s) left out of the scores (and of the controls): %s", task, len(bad),
                    ", ".join(f"{qid} ({why})" for qid, why in bad.items()))
    if len(bad) == len(ref_rows):
        raise InputError(f"{task}: every reference answer failed its check ({bad}); see the reference stage's output "
                         f"in {answers_path('reference', task)}")
    sources = sorted({str(r.get("reference_source")) for r in ref_rows})
    return [r["id"] not in bad for r in ref_rows], {
        "source": sources[0] if len(sources) == 1 else sources, "checked": len(ref_rows), "excluded": len(bad),
        "by_reason": dict(Counter(bad.values())), "excluded_ids": bad}


def seed_names(variant: str, ev: Eval, train: Train, seed: int) -> list[tuple[str, int]]:
    """The answer sets of one variant with the seed that trained each: its own (`seed`), then one per extra training
    seed: those `eval.variant_seeds` lists for it (the study's recipe variants, scripts/study.py), else
    `train.extra_seeds` for a variant built from adapters (pipeline.answer.answerers)."""
    from sling.models.loading import VARIANTS

    listed = OmegaConf.select(ev, "variant_seeds", default=None) or {}
    if variant in listed:
        extra = list(listed[variant])
    else:
        extra = list(train.extra_seeds) if VARIANTS.get(variant) else []
    return [(variant, seed)] + [(seeded(variant, s), s) for s in extra]


@dataclass
class References:
    """One task's reference answers: every row (in the answer files' order), which of them are scored, the scored
    answers' texts and their embeddings (`task_references`)."""

    task: str
    rows: list[dict]
    keep: list[bool]
    texts: list[str]
    vectors: np.ndarray

    def kept(self, rows: list) -> list:
        """The scored ones of `rows`, which follow the references' order (an answer file's rows, say)."""
        return [r for r, k in zip(rows, self.keep) if k]


def task_references(task: str, rows: list[dict], keep: list[bool], ev: Eval) -> References:
    texts = [r["answer"] for r, k in zip(rows, keep) if k]
    return References(task, rows, keep, texts, embed(ev.embedder, texts))


def seeded_scores(refs: References, name: str, ev: Eval,
                  closed_book: bool = False) -> tuple[list[dict], dict[str, np.ndarray]]:
    """One answer set's kept rows and per-question metrics."""
    path = resolve_path(answers_path(name, refs.task, closed_book))
    if not path.exists():
        what = "rag.closed_book=true" if closed_book else "the answer stage's outputs"
        raise InputError(f"{path} is missing ({what}): re-run the answer stage")
    rows = read_jsonl(path)
    if [r["id"] for r in rows] != [r["id"] for r in refs.rows]:
        raise InputError(f"{name}/{refs.task}: answers and references cover different questions; re-run the answer "
                         "stage")
    rows = refs.kept(rows)
    retrieved = [[c["text"] for c in r["retrieved"]] for r in rows]
    return rows, score_answers([r["answer"] for r in rows], refs.texts, retrieved, ev, refs.vectors)


def stack(runs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-question metrics of one run, or (seeds x questions) arrays of several."""
    return runs[0] if len(runs) == 1 else {k: np.vstack([q[k] for q in runs]) for k in runs[0]}


def score_task(cfg: DictConfig, task: str) -> tuple[dict, list[dict]]:
    """One task's scores (pipeline/score.py writes them) and its per-question table: every variant's answers against
    the checked references, the controls, retrieval, paired differences, power and, with rag.closed_book, the
    closed-book arm. Reads the rag, eval and train sections and the seed."""
    ev, seed = cfg.eval, cfg.seed
    all_refs = read_jsonl(resolve_path(answers_path("reference", task)))
    keep, ref_check = check_references(all_refs, ev, task)
    refs = task_references(task, all_refs, keep, ev)
    result: dict = {"questions": len(refs.texts), "languages": tasks()[task].get("languages", []),
                    "references": ref_check, "variants": {}, "controls": {}, "paired": {}}
    per_question: list[dict] = [{"id": r["id"], "question": r["question"], "reference": r["answer"]}
                                for r in refs.kept(all_refs)]
    per_variant_q = {}
    retrieved_texts = None
    timing_file = resolve_path(ANSWER_METRICS)
    timings = read_json(timing_file) if timing_file.exists() else {}
    names = {variant: seed_names(variant, ev, cfg.train, seed) for variant in cfg.rag.variants}
    seeds = {variant: [s for _, s in named] for variant, named in names.items()}  # in the order of its rows
    for variant in cfg.rag.variants:
        runs = [seeded_scores(refs, name, ev) for name, _ in names[variant]]
        rows, q = runs[0]  # the run's own seed: the per-question table, latency
        retrieved_texts = [[c["text"] for c in r["retrieved"]] for r in rows]
        per_variant_q[variant] = pooled = stack([q for _, q in runs])
        s = summarise(pooled, ev, seed)
        if len(runs) > 1:
            s["per_seed"] = {str(sd): {k: round(float(q[k].mean()), 4) for k in PER_QUESTION}
                             for sd, (_, q) in zip(seeds[variant], runs)}
        speed = timings.get(f"{variant}.{task}", {})  # the answer stage's, measured on the run's own seed
        s.update(latency_s=speed.get("latency_s"), tokens_per_s=speed.get("tokens_per_s"),
                 answer_tokens=round(sum(r["answer_tokens"] or 0 for r in rows) / len(rows), 1))
        result["variants"][variant] = s
        for i, (pq, r) in enumerate(zip(per_question, rows)):
            pq[variant] = r["answer"]
            pq[f"{variant}_cosine"] = round(float(q["cosine"][i]), 4)
            pq[f"{variant}_token_f1"] = round(float(q["token_f1"][i]), 4)
    # Retrieval is the same for every variant (same question embedding, same index).
    first = refs.kept(read_jsonl(resolve_path(answers_path(cfg.rag.variants[0], task))))
    retrieval, ranks = retrieval_metrics([r.get("source_text", "") for r in first], [r["retrieved"] for r in first],
                                         cfg.rag.top_k, ev, seed)
    if retrieval:
        result["retrieval"] = retrieval
    for pq, rk, r in zip(per_question, ranks, first):
        pq["source_rank"] = rk
        pq["retrieved"] = [c["id"] for c in r["retrieved"]]
    result["controls"] = score_controls(refs.texts, retrieved_texts, ev, seed, refs.vectors)
    result["soundness"] = soundness(result["variants"], result["controls"])
    unsound = {k: s["at_or_below_floor"] for k, s in result["soundness"].items() if not s["sound"]}
    if unsound:
        log.warning("%s: the floor control (a shuffled reference) is not below %s; read those metrics as unsound",
                    task, "; ".join(f"{k} for {', '.join(v)}" for k, v in unsound.items()))
    result["paired"] = paired_differences(per_variant_q, ev, seed, seeds)
    result["power"] = power(result, ev)
    if cfg.rag.closed_book:
        arm = closed_book(refs, per_variant_q, names, ev, seed)
        result |= {"closed_book": arm.scores, "retrieval_gain": arm.retrieval_gain, "easy_questions": arm.easy}
        for pq, extra in zip(per_question, arm.per_question):
            pq.update(extra)
    return result, per_question


@dataclass
class ClosedBook:
    """The closed-book arm of one task: each variant's scores, what retrieval adds to it (RAG minus closed-book,
    paired), the questions the base model already answers without context, and each question's closed-book
    answers and scores for the per-question table."""

    scores: dict
    retrieval_gain: dict
    easy: dict
    per_question: list[dict]


def closed_book(refs: References, per_variant_q: dict, names: dict[str, list[tuple[str, int]]], ev: Eval,
                seed: int) -> ClosedBook:
    """Each variant's answers with no retrieved context (its answer sets: `names`, as `seed_names` gives them), scored
    the same way; per variant, RAG minus closed-book, paired; and the questions the base model already answers
    closed-book (rescaled cosine at least `eval.easy_rescaled`), marked easy."""
    scores, gain = {}, {}
    per_question: list[dict] = [{} for _ in refs.texts]
    for variant, named in names.items():
        runs = [seeded_scores(refs, name, ev, closed_book=True) for name, _ in named]
        rows, q = runs[0]
        pooled = stack([q for _, q in runs])
        scores[variant] = summarise(pooled, ev, seed)
        gain[variant] = {k: d.as_dict() for k, d in paired(pooled, per_variant_q[variant], ev, seed,
                                                            ("rescaled", "token_f1_rescaled")).items()}
        for i, pq in enumerate(per_question):
            pq[f"{variant}_closed_book"] = rows[i]["answer"]
            pq[f"{variant}_closed_book_rescaled"] = round(float(q["rescaled"][i]), 4)
    base = "base" if "base" in names else next(iter(names))
    ids = [r["id"] for r in refs.kept(refs.rows)]
    easy = [qid for qid, pq in zip(ids, per_question) if pq[f"{base}_closed_book_rescaled"] >= ev.easy_rescaled]
    for qid, pq in zip(ids, per_question):
        pq["easy"] = qid in easy
    return ClosedBook(scores, gain, {"count": len(easy), "share": round(len(easy) / max(len(per_question), 1), 4),
                                     "ids": easy, "rule": f"{base} closed-book rescaled cosine >= {ev.easy_rescaled}"},
                      per_question)


def question_points(table: dict[str, list[dict]], variants: list[str]) -> list[dict]:
    """QUESTION_SCORES_PLOT: each question's cosine and token F1 per variant (DVC's per-question scatter, the report's
    distributions)."""
    return [{"task": task, "variant": v, "id": row["id"], "cosine": row[f"{v}_cosine"], "token_f1": row[f"{v}_token_f1"]}
            for task, rows in table.items() for row in rows for v in variants]


def variant_bars(scores: dict[str, dict]) -> list[dict]:
    """VARIANT_SCORES_PLOT: one bar per task and variant, its mean rescaled cosine, which `dvc plots diff`
    draws side by side for each experiment."""
    return [{"variant": f"{task} / {v}", "rescaled_cosine": m["rescaled"]}
            for task, s in scores.items() for v, m in s["variants"].items()]

