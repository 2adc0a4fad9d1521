"""The held-out benchmark: named tasks read from question files, or tasks generated from the documents (a document-level
split with overlap groups, questions written by the teacher, an optional critic, the quality and validity filters,
and the funnel that counts what each filter dropped), and the benchmark card's samples and languages.
Entry point: `pipeline/benchmark.py`.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import math
import random
import re
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig

from sling.config import resolve_path, work_root
from sling.data.importers import read_benchmark
from sling.data.multihop import HOP_DROPS
from sling.documents.language import prompt_language
from sling.documents.read import find_documents
from sling.errors import ConfigError, UserError
from sling.io import read_json, read_jsonl, sha256_text
from sling.paths import MANIFEST, PARAGRAPHS, slug
from sling.schema import Benchmark, Data, Dataset, Eval, Ingest, Model, Rag, Split, Teacher
from sling.teacher.quality import FILTERS, filter_rows, validity_problem

log = logging.getLogger("benchmark")


class BenchmarkError(UserError):
    """The benchmark cannot be built; the message says why and what to change."""


def shown(path: Path) -> str:
    """A path as tasks.json records it: relative to the work root when inside it."""
    try:
        return str(path.resolve().relative_to(work_root().resolve()))
    except ValueError:
        return str(path.resolve())


def ingested_documents() -> list[dict]:
    """Manifest entries of the documents that ingest turned into paragraphs, in manifest order."""
    path = resolve_path(MANIFEST)
    if not path.exists():
        return []
    return [d for d in read_json(path)["documents"] if d.get("status") in ("ok", "partial")]


def overlap_groups(split: Split, docs: list[dict], paragraphs: list[dict]) -> list[list[dict]]:
    """The documents in groups that must stay on one side of the split: two documents are joined when they share at
    least `data.split.group_overlap` of the shorter one's paragraphs (a paper and the proceedings that reprint it,
    two versions of a manual), so that no benchmark document is a copy of a training one. In manifest order."""
    hashes: dict[str, set[str]] = {d["doc_id"]: set() for d in docs}
    for p in paragraphs:
        if p["doc_id"] in hashes:
            hashes[p["doc_id"]].add(p["paragraph_hash"])
    parent = {d["doc_id"]: d["doc_id"] for d in docs}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    share = split.group_overlap
    if share is not None:
        # only pairs that share a paragraph are compared: a folder of distinct documents costs one pass, not n^2
        holders: dict[str, list[str]] = {}
        for doc_id, own in hashes.items():
            for h in own:
                holders.setdefault(h, []).append(doc_id)
        common = Counter(pair for ids in holders.values() for pair in itertools.combinations(ids, 2))
        for (a, b), n in common.items():
            if n >= share * min(len(hashes[a]), len(hashes[b])):
                parent[root(b)] = root(a)
    groups: dict[str, list[dict]] = {}
    for d in docs:
        groups.setdefault(root(d["doc_id"]), []).append(d)
    return list(groups.values())


def split_documents(split: Split, seed: int, docs: list[dict],
                    paragraphs: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """(training, benchmark) documents. Named documents win over the share; otherwise the documents, in groups of
    near-copies (`overlap_groups`), are ranked by a seeded hash of their content and groups are held out in that
    order until the share is reached, so adding a document to the folder moves at most that one document (and its
    copies) between the sides."""
    named = list(split.benchmark_documents or [])
    groups = overlap_groups(split, docs, paragraphs or [])
    if named:
        by_name = {d["document"]: d for d in docs}
        unknown = [n for n in named if n not in by_name]
        if unknown:
            raise ConfigError(f"data.split.benchmark_documents names {unknown}, which ingest did not produce; the "
                              f"ingested documents are {sorted(by_name)} (names relative to data.corpus_dir)")
        if len(set(named)) >= len(docs):
            raise ConfigError("data.split.benchmark_documents holds out every document: leave some to train on")
        bench = [by_name[n] for n in dict.fromkeys(named)]
        for g in groups:
            held = [d["document"] for d in g if d["document"] in named]
            kept = [d["document"] for d in g if d["document"] not in named]
            if held and kept:
                log.warning("benchmark document(s) %s share most of their paragraphs with training document(s) %s: "
                            "those paragraphs are not asked about; name both in data.split.benchmark_documents to "
                            "hold out both", held, kept)
    else:
        if len(groups) < 2:
            what = (f"{len(docs)} document(s) ingested" if len(docs) < 2 else
                    f"the {len(docs)} documents share most of their paragraphs (data.split.group_overlap)")
            raise BenchmarkError(f"{what}: a held-out benchmark needs at least two distinct documents, one to train on "
                                 "and one to test on; add documents to data.corpus_dir")
        n = min(max(1, round(len(docs) * split.benchmark_fraction)), len(docs) - 1)

        def key(d: dict) -> str:
            return hashlib.sha256(f"{seed}:{d['sha256']}".encode()).hexdigest()

        bench = []
        for g in sorted(groups, key=lambda g: min(key(d) for d in g)):
            if len(bench) + len(g) <= n:
                bench += g
            if len(bench) >= n:
                break
        bench = bench or min(groups, key=len)  # every group is larger than the share: the smallest one
        for g in groups:
            if len(g) > 1:
                log.info("kept on one side of the split, as they share most of their paragraphs: %s",
                         [d["document"] for d in g])
    held = {d["doc_id"] for d in bench}
    return [d for d in docs if d["doc_id"] not in held], sorted(bench, key=lambda d: d["document"])


def paragraph_order(bench: Benchmark, seed: int, paragraphs: list[dict], doc: dict, exclude: set[str]) -> list[dict]:
    """One document's paragraphs in the seeded order they are asked about; never one whose text is also a training
    document's paragraph (`exclude`: their hashes), as boilerplate shared by documents is."""
    own = [p for p in paragraphs if p["doc_id"] == doc["doc_id"] and p["paragraph_hash"] not in exclude]
    long_enough = [p for p in own if len(p["text"]) >= bench.min_paragraph_chars] or own
    return random.Random(f"{seed}:{doc['doc_id']}").sample(long_enough, len(long_enough))


CRITERIA = ("clarity", "answerable", "faithful")


CRITIC_DROPS = ("critic_low_score", "critic_unparsed")


def parse_rating(reply: str) -> dict[str, int] | None:
    """The critic's three ratings from its reply (`clarity: 4` lines, in any order, markdown bold allowed), or None
    when any of them is missing: an unparsable reply is a counted drop, never a guess."""
    found = {}
    for name in CRITERIA:
        m = re.search(rf"\b{name}\w*\**\s*[:=-]\s*\**\s*([1-5])(?![0-9])", reply or "", re.I)
        if m is None:
            return None
        found[name] = int(m.group(1))
    return found


def critic_enabled(bench: Benchmark, teacher: Teacher) -> bool:
    """`benchmark.critic.enabled`: auto is on for a teacher behind an API and off for the embedded one."""
    setting = bench.critic.enabled
    return teacher.kind == "openai" if setting == "auto" else bool(setting)


def criticise(bench: Benchmark, calls, rows: list[dict], label: str) -> tuple[list[dict], Counter, Counter]:
    """The rows the critic scores at least `benchmark.critic.min_score` (each keeps its `critic` ratings), the drops
    by reason, and the distribution of scores (the lowest of the three ratings; `unparsed` for a reply that has none)."""
    c = bench.critic
    prompts = [c.prompt.format(paragraph=r["paragraph"], question=r["question"], answer=r["answer"]) for r in rows]
    replies = calls.run(prompts, "critic" + label)
    kept, dropped, scores = [], Counter(dict.fromkeys(CRITIC_DROPS, 0)), Counter()
    for r, reply in zip(rows, replies):
        if reply is None:  # a failed call: reported by the caller with the others
            continue
        rating = parse_rating(reply)
        if rating is None:
            dropped["critic_unparsed"] += 1
            scores["unparsed"] += 1
            continue
        score = min(rating.values())
        scores[str(score)] += 1
        if score < c.min_score:
            dropped["critic_low_score"] += 1
        else:
            kept.append(r | {"critic": rating})
    return kept, dropped, scores


def questions_per_document(bench: Benchmark, ev: Eval, n_documents: int) -> int:
    """`benchmark.questions_per_document`, or when null the share of each benchmark document in the joint task's
    target: enough questions to detect a paired difference of `eval.target_difference` (80% power at the `eval.ci`
    level) when per-question differences spread with `eval.paired_sd` (sling.scoring.stats)."""
    from sling.scoring.stats import questions_needed

    if bench.questions_per_document is not None:
        return bench.questions_per_document
    need = questions_needed(ev.target_difference, ev.paired_sd, ev.ci)
    return max(1, math.ceil(need / max(n_documents, 1)))


def reference_kind(bench: Benchmark, teacher: Teacher) -> str:
    """`benchmark.reference`: auto is extractive for the embedded teacher, the teacher's own answer behind an API."""
    setting = bench.reference
    return ("extractive" if teacher.kind == "embedded" else "teacher") if setting == "auto" else setting


def multihop_method(bench: Benchmark, teacher: Teacher) -> str:
    """`benchmark.multihop.method`: auto composes kept questions for the embedded teacher, lets a teacher behind an
    API write one question over both paragraphs."""
    setting = bench.multihop.method
    return ("compose" if teacher.kind == "embedded" else "teacher") if setting == "auto" else setting


def references(rag: Rag, bench: Benchmark, calls, kind: str, asked: list[tuple[list[dict], str]],
               desc: str) -> list[str | None]:
    """The reference of each (source paragraphs, question): the sources' sentences closest to the question
    (extractive), or the teacher's answer from the sources (`benchmark.answer_prompt`)."""
    return [None if parts is None else " ".join(parts)
            for parts in reference_parts(rag, bench, calls, kind, asked, desc)]


def reference_parts(rag: Rag, bench: Benchmark, calls, kind: str, asked: list[tuple[list[dict], str]],
                    desc: str) -> list[list[str] | None]:
    """`references` as parts (sling.data.questions.reference_parts), with the benchmark's answer prompt."""
    from sling.data.questions import reference_parts as parts

    return parts(calls, kind, rag.embedder, bench.answer_prompt, asked, desc)


def write_candidates(bench: Benchmark, teacher: Teacher, rag: Rag, calls, sampled: list[dict], examples: dict,
                     kind: str, label: str) -> list[dict]:
    """Every candidate question of the sampled paragraphs (sling.data.questions.plan: the question types in turn,
    greedy then sampled), with its reference; one row each."""
    from sling.data.questions import ask, clean_question, plan, type_prompt, with_examples

    items, meta = [], []
    for p in sampled:
        language = prompt_language(p)
        for qtype, sample in plan(bench.samples_per_paragraph, list(bench.question_types), p["para_num"]):
            prompt = type_prompt(qtype, bench.question_prompt).format(paragraph=p["text"], language=language)
            items.append((with_examples(prompt, language, examples.get(p.get("language") or "", [])), sample))
            meta.append((p, qtype, sample))
    questions = [clean_question(q) if q else q for q in ask(calls, items, bench.sample_temperature,
                                                             "benchmark questions" + label,
                                                             max_tokens=teacher.question_max_tokens)]
    asked = [(m, q) for m, q in zip(meta, questions) if q]
    answers = references(rag, bench, calls, kind, [([m[0]], q) for m, q in asked], "oracle answers" + label)
    return [{"doc_id": p["doc_id"], "document": p["document"], "page": p["page"], "para_num": p["para_num"],
             "paragraph": p["text"], "paragraph_hash": p["paragraph_hash"], "language": p.get("language"),
             "question_type": qtype, "sample": sample, "question": q, "answer": a.strip()}
            for ((p, qtype, sample), q), a in zip(asked, answers) if a is not None]


# Drops that say the teacher did not write a question in the document's language at all, rather than a question
# that a looser setting would keep.
NOT_WRITTEN = ("empty_or_malformed", "refusal", "wrong_language", "not_a_question", "echoes_prompt")


def no_questions_message(stats: dict, documents: list[dict]) -> str:
    """The one-line error when no benchmark document kept a question: the drops that were not zero and the fix that
    fits them. When most candidates were no question in the documents' language, the teacher cannot write them and
    only a stronger one helps; otherwise a looser filter or more questions asked may."""
    dropped = {k: v for k, v in (stats.get("dropped") or {}).items() if v}
    drops = ", ".join(f"{k} {v}" for k, v in dropped.items()) or "none"
    head = (f"no benchmark question survived the quality filters from the {len(documents)} benchmark document(s) "
            f"({stats.get('generated', 0)} candidates; dropped: {drops})")
    if sum(dropped.get(k, 0) for k in NOT_WRITTEN) > sum(dropped.values()) / 2:
        langs = ", ".join(sorted({d.get("language") or "?" for d in documents}))
        return (f"{head}: the teacher ({stats.get('teacher')}) wrote few questions in the documents' language "
                f"({langs}); use a stronger teacher (teacher=openai with any OpenAI-compatible server: "
                "docs/documents.md, Another teacher)")
    return (f"{head}: raise benchmark.questions_per_document, loosen the dataset.* filters (e.g. "
            "dataset.min_grounding), or use a stronger teacher")


def findable_k(bench: Benchmark, pool_size: int) -> int | None:
    """The round trip's k: `benchmark.findable_top_k`, but at most `benchmark.findable_share` of the `pool_size`
    paragraphs BM25 ranks (at least 1), so that the check still tells on a small folder; None: no check."""
    if bench.findable_top_k is None or not pool_size:
        return None
    return min(bench.findable_top_k, max(1, math.ceil(bench.findable_share * pool_size)))


def findable(bench: Benchmark, lexical, rows: list[dict], dropped: Counter) -> list[dict]:
    """The rows whose source paragraph(s) an independent BM25 retriever ranks within the round trip's k (`findable_k`)
    for their question, each with its `findable_rank` (the worst of its sources'); the others counted `not_findable`."""
    from sling.retrieval.lexical import findable_rank

    k = findable_k(bench, len(lexical.hashes)) if lexical is not None else None
    if k is None:
        return rows
    dropped["not_findable"] += 0  # counted in the card even when none is dropped
    kept = []
    for r, found in zip(rows, lexical.ranks([r["question"] for r in rows], k)):
        rank = findable_rank(found, r.get("sources") or [r["paragraph_hash"]])
        if rank is None:
            dropped["not_findable"] += 1
        else:
            kept.append(r | {"findable_rank": rank})
    return kept


def screen(bench: Benchmark, dataset: Dataset, rows: list[dict], lexical, critic, label: str,
           check=None) -> tuple[list[dict], dict, Counter]:
    """The candidates that pass the quality and validity filters, `check` (a row's drop reason or None), the
    round trip through BM25 and, where enabled, the critic; the drops by reason and the critic's scores."""
    from sling.data.questions import instruction

    kept, dropped, _ = filter_rows(dataset, rows, percentile=0, instruction=instruction(bench.question_prompt))
    dropped = Counter(dropped)
    if check is not None:
        passed = []
        for r in kept:
            why = check(r)
            if why:
                dropped[why] += 1
            else:
                passed.append(r)
        kept = passed
    kept = findable(bench, lexical, kept, dropped)
    scores: Counter = Counter()
    if critic is not None:  # every round rates every candidate again: the earlier ones come from the cache
        kept, critic_drops, scores = criticise(bench, critic, kept, label)
        dropped.update(critic_drops)
    return kept, dict(dropped), scores


def stop_on_failures(teacher, calls, critic) -> None:
    """The one-line error for teacher (or critic) calls that failed after their retries; the finished ones are cached."""
    from sling.teacher.client import server_hint

    failures = calls.failures + (critic.failures if critic else [])
    if failures:
        done = calls.usage["calls"] + (critic.usage["calls"] if critic else 0)
        raise BenchmarkError(f"{len(failures)} teacher calls failed (first: {failures[0]}){server_hint(teacher)}; "
                             f"the {done} finished calls are cached, re-run to retry")


def write_questions(bench: Benchmark, teacher: Teacher, model: Model, dataset: Dataset, rag: Rag, ev: Eval, seed: int,
                    cache_dir: str, documents: list[dict], paragraphs: list[dict]) -> tuple[list[dict], dict]:
    """The teacher's questions and references for the benchmark `documents`' sampled paragraphs: several candidates
    per paragraph (question types, samples), filtered, found again by BM25, and the best `questions_per_paragraph`
    of each paragraph kept. A document short of `benchmark.questions_per_document` kept questions gets more
    paragraphs (the shortfall over the share of paragraphs that gave a question so far), in up to
    `benchmark.max_rounds` rounds, while it has any left; a later round's prompts show questions already kept in the
    paragraph's language (`benchmark.examples`). Returns the kept single-paragraph questions and the card's counts;
    multi-hop questions are `write_multihop`'s."""
    from sling.data.questions import examples_by_language, select, type_mix
    from sling.retrieval.lexical import Lexical
    from sling.teacher.client import CachedCalls, make_teacher

    held = {d["doc_id"] for d in documents}
    training = {p["paragraph_hash"] for p in paragraphs if p["doc_id"] not in held}
    order = {d["doc_id"]: paragraph_order(bench, seed, paragraphs, d, training) for d in documents}
    for d in documents:
        if not order[d["doc_id"]]:
            log.warning("%s: every paragraph is also in a training document, so none is asked about",
                        d["document"])
    calls = CachedCalls(cache_dir, make_teacher(teacher, model), bench.prompt_version)
    critic = (CachedCalls(cache_dir, calls.teacher, bench.critic.prompt_version) if critic_enabled(bench, teacher)
              else None)
    kind = reference_kind(bench, teacher)
    pool = [p for p in paragraphs if p["doc_id"] in held]
    lexical = Lexical(pool) if bench.findable_top_k and pool else None
    target = questions_per_document(bench, ev, len(documents))
    per_paragraph = bench.questions_per_paragraph
    used = {d["doc_id"]: 0 for d in documents}
    rows: list[dict] = []
    kept: list[dict] = []
    dropped: dict = {}
    scores: Counter = Counter()
    examples: dict = {}
    rounds = 0
    for rounds in range(1, bench.max_rounds + 1):
        have = {d["doc_id"]: 0 for d in documents}
        for r in kept:
            have[r["doc_id"]] += 1
        # after the first round, ask for the shortfall over the share of paragraphs that gave a question (at most 4x)
        gave = len({r["paragraph_hash"] for r in kept})
        factor = 1.0 if rounds == 1 else min(4.0, sum(used.values()) / gave) if gave else 4.0
        sampled = []
        for d in documents:
            i, short = used[d["doc_id"]], max(0, target - have[d["doc_id"]])
            take = math.ceil(short * factor / per_paragraph)
            sampled += order[d["doc_id"]][i:i + take]
            used[d["doc_id"]] = min(i + take, len(order[d["doc_id"]]))
        if not sampled:
            rounds -= 1
            break
        label = "" if rounds == 1 else f" (round {rounds})"
        rows += write_candidates(bench, teacher, rag, calls, sampled, examples, kind, label)
        passed, dropped, scores = screen(bench, dataset, rows, lexical, critic, label)
        kept = select(passed, per_paragraph, rank="findable_rank")
        dropped["per_paragraph"] = len(passed) - len(kept)
        examples = examples_by_language(kept, bench.examples)
        stop_on_failures(calls.teacher, calls, critic)
    per_doc: dict[str, list[dict]] = {}
    for r in kept:  # in the order asked: a later round's surplus beyond the target is left out
        per_doc.setdefault(r["doc_id"], []).append(r)
    kept = [r for d in documents for r in sorted(per_doc.get(d["doc_id"], [])[:target],
                                                key=lambda r: (r["para_num"], r.get("question_type") or ""))]
    mix_asked, mix_kept = type_mix(rows), type_mix(kept)
    stats = {"questions_per_document": target, "sampled_paragraphs": sum(used.values()), "rounds": rounds,
             "generated": len(rows), "kept": len(kept), "dropped": dict(dropped),
             "funnel": funnel(len(rows), dropped, len(kept)),
             "question_types": {t: {"candidates": n, "kept": mix_kept.get(t, 0)} for t, n in mix_asked.items()},
             "reference": kind, "findable_top_k": bench.findable_top_k,
             "findable_k": findable_k(bench, len(pool)), "benchmark_paragraphs": len(pool),
             "samples_per_paragraph": bench.samples_per_paragraph, "questions_per_paragraph": per_paragraph,
             "critic": {"enabled": critic is not None, "min_score": bench.critic.min_score if critic else None,
                        "scores": {k: scores[k] for k in sorted(scores)}},
             "teacher": calls.teacher.name}
    if bench.multihop.enabled and kept:
        hop_rows, stats["multihop"] = write_multihop(bench, teacher, dataset, rag, calls, critic, lexical, kind, pool,
                                                     order, kept, examples)
        kept = kept + hop_rows
    stop_on_failures(calls.teacher, calls, critic)
    usage = calls.usage + (critic.usage if critic else Counter())
    stats |= {"calls": usage["calls"], "cache_hits": usage["cache_hits"], "prompt_tokens": usage["prompt_tokens"],
              "completion_tokens": usage["completion_tokens"]}
    return kept, stats


def write_multihop(bench: Benchmark, teacher: Teacher, dataset: Dataset, rag: Rag, calls, critic, lexical, kind: str,
                   pool: list[dict], order: dict, single: list[dict], examples: dict) -> tuple[list[dict], dict]:
    """Questions over pairs of benchmark paragraphs (sling.data.multihop), aiming at `benchmark.multihop.share` of
    the benchmark: candidates, filters, the hop check, the BM25 round trip (both paragraphs found), one per pair.
    Returns the kept rows (each with `hops`, its two paragraphs) and the card's counts."""
    from sling.data.multihop import compose, hop_problem, pairs
    from sling.data.questions import MULTIHOP_PROMPT, ask, clean_question, select, with_examples

    m = bench.multihop
    aim = math.ceil(m.share / (1 - m.share) * len(single))
    method = multihop_method(bench, teacher)
    if method == "compose":  # pairs among the paragraphs that kept questions, each in as many pairs as it has
        have = Counter(r["paragraph_hash"] for r in single)
        candidates = [p for p in pool if p["paragraph_hash"] in have]
        linked = pairs(rag.embedder, candidates, m.min_cosine, m.max_cosine, 2 * aim,
                       [have[p["paragraph_hash"]] for p in candidates])
        def together(qa: dict, qb: dict) -> tuple[str, list[str]]:  # the composed question and its two parts
            return f"{qa['question']} {qb['question']}", [qa["answer"], qb["answer"]]

        def needs_both(a: dict, b: dict, qa: dict, qb: dict) -> bool:
            return hop_problem(*together(qa, qb), a["text"], b["text"], m.max_single_support) is None

        asked = [((a, b, 0), *together(qa, qb)) for a, b, qa, qb in compose(single, linked, needs_both)]
    else:
        eligible = {p["paragraph_hash"] for ps in order.values() for p in ps}
        candidates = [p for p in pool if p["paragraph_hash"] in eligible]
        linked = pairs(rag.embedder, candidates, m.min_cosine, m.max_cosine, 2 * aim)
        items, meta = [], []
        for a, b in linked:
            language = prompt_language(a)
            prompt = MULTIHOP_PROMPT.format(first=a["text"], second=b["text"], language=language)
            for sample in range(m.samples_per_pair):
                items.append((with_examples(prompt, language, examples.get(a.get("language") or "", [])), sample))
                meta.append((a, b, sample))
        questions = [clean_question(q) if q else q for q in ask(calls, items, bench.sample_temperature,
                                                                 "multi-hop questions",
                                                                 max_tokens=teacher.question_max_tokens)]
        written = [(mt, q) for mt, q in zip(meta, questions) if q]
        answers = reference_parts(rag, bench, calls, kind, [([mt[0], mt[1]], q) for mt, q in written],
                                  "multi-hop references")
        asked = [(mt, q, parts) for (mt, q), parts in zip(written, answers)]
    rows = [{"doc_id": a["doc_id"], "document": a["document"], "page": a["page"], "para_num": a["para_num"],
             "paragraph": f"{a['text']}\n\n{b['text']}", "paragraph_hash": a["paragraph_hash"],
             "language": a.get("language"), "question_type": "multihop", "sample": sample,
             "pair": f"{a['paragraph_hash']}+{b['paragraph_hash']}", "sources": [a["paragraph_hash"], b["paragraph_hash"]],
             "hops": [hop(a), hop(b)], "question": q, "answer": " ".join(parts).strip(), "parts": parts}
            for (a, b, sample), q, parts in asked if parts is not None]
    by_pair = {f"{a['paragraph_hash']}+{b['paragraph_hash']}": (a, b) for a, b in linked}

    def check(r: dict) -> str | None:
        a, b = by_pair[r["pair"]]
        return hop_problem(r["question"], r["parts"], a["text"], b["text"], m.max_single_support)

    passed, dropped, _ = screen(bench, dataset, rows, lexical, critic, " (multi-hop)", check)
    kept = select(passed, 1, group="pair", rank="findable_rank")[:aim]
    dropped["per_pair"] = len(passed) - len(kept)
    stats = {"method": method, "aimed": aim, "pairs": len(linked), "candidates": len(rows), "kept": len(kept), "dropped": dropped,
             "dropped_by_hop_check": sum(dropped.get(k, 0) for k in HOP_DROPS),
             "funnel": funnel(len(rows), dropped, len(kept))}
    return kept, stats


def hop(p: dict) -> dict:
    """One paragraph of a multi-hop question, as its record keeps it."""
    return {"document": p["document"], "doc_id": p["doc_id"], "page": p["page"], "para_num": p["para_num"],
            "paragraph_hash": p["paragraph_hash"], "text": p["text"]}


def funnel(generated: int, dropped: dict, kept: int) -> list[dict]:
    """The candidates left before and after each filter, in the order they apply (the benchmark card); the last
    step, `target`, is what the per-document cap and round surplus leave out."""
    steps, left = [], generated
    for reason in [*FILTERS, *HOP_DROPS, "not_findable", *CRITIC_DROPS, "per_paragraph", "per_pair"]:
        if reason in dropped:
            steps.append({"filter": reason, "before": left, "after": left - dropped[reason]})
            left -= dropped[reason]
    steps.append({"filter": "target", "before": left, "after": kept})
    return steps


def question_record(r: dict, qid: str, source: str) -> dict:
    # a multi-hop question's `text` is its first paragraph (recall@k looks for it); `hops` holds both
    text = r["hops"][0]["text"] if r.get("hops") else r["paragraph"]
    return {"id": qid, "question": r["question"], "text": text, "document": r["document"],
            "doc_id": r["doc_id"], "page": r["page"], "para_num": r["para_num"], "paragraph_hash": r["paragraph_hash"],
            "language": r.get("language"), "reference": r["answer"], "reference_source": source,
            **{k: r[k] for k in ("question_type", "findable_rank", "hops", "critic") if r.get(k)}}


def generated_tasks(cfg: DictConfig) -> tuple[dict, dict, dict, dict]:
    """Split, tasks with their questions, the index's collections (name -> documents) and counts, from the documents
    themselves. The benchmark stage's entry: it takes the whole
    config, as its steps read `data`, `benchmark`, `teacher`, `model`, `dataset`, `rag`, `eval`, `seed` and
    `cache_dir`, and hands each step its sections."""
    docs = ingested_documents()
    if not docs:
        raise BenchmarkError(f"{resolve_path(MANIFEST)} lists no ingested document: run the ingest stage first")
    paragraphs = read_jsonl(resolve_path(PARAGRAPHS))
    train, bench = split_documents(cfg.data.split, cfg.seed, docs, paragraphs)
    rows, stats = write_questions(cfg.benchmark, cfg.teacher, cfg.model, cfg.dataset, cfg.rag, cfg.eval, cfg.seed,
                                  cfg.cache_dir, bench, paragraphs)
    source = f"oracle:{stats['teacher']}" if stats["reference"] == "teacher" else f"extractive:{cfg.rag.embedder}"
    corpus = resolve_path(cfg.data.corpus_dir)
    hop_rows = [r for r in rows if r.get("hops")]
    rows = [r for r in rows if not r.get("hops")]
    per_doc: dict[str, list[dict]] = {d["doc_id"]: [] for d in bench}
    for r in rows:
        per_doc[r["doc_id"]].append(r)
    names: dict[str, str] = {}
    reserved = {cfg.benchmark.joint_task, cfg.benchmark.multihop.task}
    for d in bench:
        name, k = slug(d["document"]), 2
        while name in names.values() or name in reserved:
            name, k = f"{slug(d['document'])}-{k}", k + 1
        names[d["doc_id"]] = name
    questions = {d["doc_id"]: [question_record(r, f"{names[d['doc_id']]}-{i:02d}", source)
                               for i, r in enumerate(per_doc[d["doc_id"]], 1)] for d in bench}
    empty = [d["document"] for d in bench if not questions[d["doc_id"]]]
    if empty:
        log.warning("no benchmark question survived the filters for %d document(s): %s (see metrics/benchmark.json)",
                    len(empty), empty)
    if len(empty) == len(bench):
        raise BenchmarkError(no_questions_message(stats, bench))
    # The collections the index builds: every task the split allows, whichever the questions then filled, so that a
    # benchmark-side change (more or fewer questions, a task left empty) leaves them, and the index, as they were.
    # The tasks are the collections the questions filled.
    every = [shown(corpus / d["document"]) for d in bench]
    collections: dict[str, list[str]] = {}
    task_rows: dict[str, list[dict]] = {}
    if cfg.benchmark.per_document_tasks:
        for d in bench:
            collections[names[d["doc_id"]]] = [shown(corpus / d["document"])]
            task_rows[names[d["doc_id"]]] = questions[d["doc_id"]]
    if cfg.benchmark.joint_task:
        collections[str(cfg.benchmark.joint_task)] = every
        task_rows[str(cfg.benchmark.joint_task)] = [q for d in bench for q in questions[d["doc_id"]]]
    if cfg.benchmark.multihop.enabled:  # questions that need two paragraphs, searched over every benchmark document
        hop_task = str(cfg.benchmark.multihop.task)
        collections[hop_task] = every
        task_rows[hop_task] = [question_record(r, f"{hop_task}-{i:02d}", source) for i, r in enumerate(hop_rows, 1)]
    tasks = {name: {"documents": list(docs), "rows": task_rows[name]}
             for name, docs in collections.items() if task_rows[name]}
    split = {"mode": "held_out", "train": {d["doc_id"]: d["document"] for d in train},
             "benchmark": {d["doc_id"]: d["document"] for d in bench}}
    stats |= {"documents": len(docs), "train_documents": len(train), "benchmark_documents": len(bench),
              "documents_without_questions": empty}
    return split, tasks, collections, stats


def named_tasks(data: Data, ingest: Ingest) -> tuple[dict, dict, dict, dict]:
    """The configured tasks, their question files normalised, and the index's collections (one per task, over its
    documents); nothing held out of training."""
    tasks: dict[str, dict] = {}
    for name, task in data.tasks.items():
        docs = find_documents(resolve_path(task.documents), list(ingest.extensions), f"data.tasks.{name}.documents")
        if not docs:
            raise BenchmarkError(f"data.tasks.{name}.documents ({resolve_path(task.documents)}) holds no document "
                                 f"with an extension in ingest.extensions {list(ingest.extensions)}")
        path = resolve_path(task.questions)
        if not path.exists():
            raise BenchmarkError(f"data.tasks.{name}.questions: {path} does not exist")
        rows = []
        for r in read_benchmark(path):
            reference = str(r.get("reference") or r.get("gpt_response") or "").strip()
            rows.append({"id": str(r["id"]), "question": " ".join(str(r["question"]).split()),
                         "text": str(r.get("text") or ""), "document": str(r.get("document") or ""),
                         "paragraph_hash": sha256_text(" ".join(str(r.get("text") or "").split()))[:16],
                         "reference": reference, "reference_source": data.reference_source if reference else None})
        tasks[str(name)] = {"documents": [shown(d) for d in docs], "rows": rows, "question_file": shown(path)}
    docs = ingested_documents()
    language = {Path(d["document"]).name: d.get("language") for d in docs}
    for t in tasks.values():  # the languages ingest detected for the task's documents, most common first
        found = Counter(language.get(Path(d).name) for d in t["documents"])
        t["languages"] = [lang for lang, _ in found.most_common() if lang]
    split = {"mode": "named_tasks", "train": {d["doc_id"]: d["document"] for d in docs}, "benchmark": {}}
    stats = {"documents": len(docs), "train_documents": len(docs), "benchmark_documents": 0}
    collections = {name: list(t["documents"]) for name, t in tasks.items()}
    return split, tasks, collections, stats | flag_invalid(tasks)


def flag_invalid(tasks: dict) -> dict:
    """Hand-written and published questions go through the validity checks too, but are kept: a person chose them,
    so a failing one is flagged by id and reason (in metrics/benchmark.json, the log and the report), never dropped."""
    flagged = {}
    for t in tasks.values():
        for r in t["rows"]:
            why = validity_problem(r["question"], r["reference"], r["text"], r.get("language"))
            if why:
                flagged[r["id"]] = why
    if flagged:
        log.warning("%d hand-written question(s) fail a validity check and are kept, flagged: %s", len(flagged),
                    ", ".join(f"{qid} ({why})" for qid, why in flagged.items()))
    return {"validity_flags": dict(Counter(flagged.values())), "flagged_questions": flagged}


def card_samples(seed: int, rows: list[dict], n: int = 3) -> list[dict]:
    """A seeded handful of a task's questions with their references, for a person to judge the benchmark by."""
    picked = random.Random(f"{seed}:card").sample(rows, min(n, len(rows)))
    return [{"id": r["id"], "question": r["question"], "reference": r["reference"]} for r in picked]


def task_languages(rows: list[dict]) -> list[str]:
    """The languages a task's questions were written from (their documents' detected languages), most common first."""
    return [lang for lang, _ in Counter(r.get("language") for r in rows if r.get("language")).most_common()]

