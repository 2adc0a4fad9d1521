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
from sling.documents.language import prompt_language, with_question_form
from sling.documents.read import find_documents
from sling.errors import ConfigError, UserError
from sling.io import read_json, read_jsonl, sha256_text
from sling.paths import MANIFEST, PARAGRAPHS, slug
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


def overlap_groups(cfg: DictConfig, docs: list[dict], paragraphs: list[dict]) -> list[list[dict]]:
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

    share = cfg.data.split.group_overlap
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


def split_documents(cfg: DictConfig, docs: list[dict],
                    paragraphs: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """(training, benchmark) documents. Named documents win over the share; otherwise the documents, in groups of
    near-copies (`overlap_groups`), are ranked by a seeded hash of their content and groups are held out in that
    order until the share is reached, so adding a document to the folder moves at most that one document (and its
    copies) between the sides."""
    named = list(cfg.data.split.benchmark_documents or [])
    groups = overlap_groups(cfg, docs, paragraphs or [])
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
        n = min(max(1, round(len(docs) * cfg.data.split.benchmark_fraction)), len(docs) - 1)

        def key(d: dict) -> str:
            return hashlib.sha256(f"{cfg.seed}:{d['sha256']}".encode()).hexdigest()

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


def paragraph_order(cfg: DictConfig, paragraphs: list[dict], doc: dict, exclude: set[str]) -> list[dict]:
    """One document's paragraphs in the seeded order they are asked about; never one whose text is also a training
    document's paragraph (`exclude`: their hashes), as boilerplate shared by documents is."""
    own = [p for p in paragraphs if p["doc_id"] == doc["doc_id"] and p["paragraph_hash"] not in exclude]
    long_enough = [p for p in own if len(p["text"]) >= cfg.benchmark.min_paragraph_chars] or own
    return random.Random(f"{cfg.seed}:{doc['doc_id']}").sample(long_enough, len(long_enough))


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


def critic_enabled(cfg: DictConfig) -> bool:
    """`benchmark.critic.enabled`: auto is on for a teacher behind an API and off for the embedded one."""
    setting = cfg.benchmark.critic.enabled
    return cfg.teacher.kind == "openai" if setting == "auto" else bool(setting)


def criticise(cfg: DictConfig, calls, rows: list[dict], label: str) -> tuple[list[dict], Counter, Counter]:
    """The rows the critic scores at least `benchmark.critic.min_score` (each keeps its `critic` ratings), the drops
    by reason, and the distribution of scores (the lowest of the three ratings; `unparsed` for a reply that has none)."""
    c = cfg.benchmark.critic
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


def questions_per_document(cfg: DictConfig, n_documents: int) -> int:
    """`benchmark.questions_per_document`, or when null the share of each benchmark document in the joint task's
    target: enough questions to detect a paired difference of `eval.target_difference` (80% power at the `eval.ci`
    level) when per-question differences spread with `eval.paired_sd` (sling.scoring.stats)."""
    from sling.scoring.stats import questions_needed

    b = cfg.benchmark
    if b.questions_per_document is not None:
        return b.questions_per_document
    need = questions_needed(cfg.eval.target_difference, cfg.eval.paired_sd, cfg.eval.ci)
    return max(1, math.ceil(need / max(n_documents, 1)))


def write_questions(cfg: DictConfig, bench: list[dict], paragraphs: list[dict]) -> tuple[list[dict], dict]:
    """The teacher's questions and oracle answers for the benchmark documents' sampled paragraphs, filtered. A
    document short of `benchmark.questions_per_document` kept questions after the filters gets more paragraphs (the
    shortfall over the share the filters kept so far), in up to `benchmark.max_rounds` rounds, while it has any left."""
    from sling.teacher.client import CachedCalls, make_teacher, server_hint

    held = {d["doc_id"] for d in bench}
    training = {p["paragraph_hash"] for p in paragraphs if p["doc_id"] not in held}
    order = {d["doc_id"]: paragraph_order(cfg, paragraphs, d, training) for d in bench}
    for d in bench:
        if not order[d["doc_id"]]:
            log.warning("%s: every paragraph is also in a training document, so none is asked about",
                        d["document"])
    teacher = make_teacher(cfg)
    calls = CachedCalls(cfg, teacher, cfg.benchmark.prompt_version)
    b = cfg.benchmark
    critic = CachedCalls(cfg, teacher, b.critic.prompt_version) if critic_enabled(cfg) else None
    target = questions_per_document(cfg, len(bench))
    used = {d["doc_id"]: 0 for d in bench}
    rows: list[dict] = []
    kept: list[dict] = []
    dropped: dict = {}
    scores: Counter = Counter()
    rounds = 0
    for rounds in range(1, b.max_rounds + 1):
        have = {d["doc_id"]: 0 for d in bench}
        for r in kept:
            have[r["doc_id"]] += 1
        # after the first round, ask for the shortfall over the share of rows the filters kept so far (at most 4x)
        factor = 1.0 if rounds == 1 else min(4.0, len(rows) / len(kept)) if kept else 4.0
        sampled = []
        for d in bench:
            i, short = used[d["doc_id"]], max(0, target - have[d["doc_id"]])
            take = math.ceil(short * factor)
            sampled += order[d["doc_id"]][i:i + take]
            used[d["doc_id"]] = min(i + take, len(order[d["doc_id"]]))
        if not sampled:
            rounds -= 1
            break
        label = "" if rounds == 1 else f" (round {rounds})"
        questions = calls.run([with_question_form(b.question_prompt.format(paragraph=p["text"],
                                                                            language=prompt_language(p)), p)
                               for p in sampled], "benchmark questions" + label)
        asked = [(p, q) for p, q in zip(sampled, questions) if q]
        answers = calls.run([b.answer_prompt.format(paragraph=p["text"], question=q, language=prompt_language(p))
                             for p, q in asked], "oracle answers" + label)
        rows += [{"doc_id": p["doc_id"], "document": p["document"], "page": p["page"], "para_num": p["para_num"],
                  "paragraph": p["text"], "paragraph_hash": p["paragraph_hash"], "language": p.get("language"),
                  "question": " ".join(q.split()), "answer": a.strip()} for (p, q), a in zip(asked, answers) if a is not None]
        kept, dropped, _ = filter_rows(cfg.dataset, rows, percentile=0)
        if critic is not None:  # every round rates every candidate again: the earlier ones come from the cache
            kept, critic_drops, scores = criticise(cfg, critic, kept, label)
            dropped = dict(dropped) | dict(critic_drops)
        failures = calls.failures + (critic.failures if critic else [])
        if failures:
            done = calls.usage["calls"] + (critic.usage["calls"] if critic else 0)
            raise BenchmarkError(f"{len(failures)} teacher calls failed (first: {failures[0]}){server_hint(teacher)}; "
                                 f"the {done} finished calls are cached, re-run to retry")
    per_doc: dict[str, list[dict]] = {}
    for r in kept:  # in the order asked: a later round's surplus beyond the target is left out
        per_doc.setdefault(r["doc_id"], []).append(r)
    kept = [r for d in bench for r in sorted(per_doc.get(d["doc_id"], [])[:target], key=lambda r: r["para_num"])]
    usage = calls.usage + (critic.usage if critic else Counter())
    stats = {"questions_per_document": target, "sampled_paragraphs": sum(used.values()), "rounds": rounds,
             "generated": len(rows), "kept": len(kept), "dropped": dict(dropped),
             "funnel": funnel(len(rows), dropped, len(kept)),
             "critic": {"enabled": critic is not None, "min_score": b.critic.min_score if critic else None,
                        "scores": {k: scores[k] for k in sorted(scores)}},
             "teacher": teacher.name, "calls": usage["calls"], "cache_hits": usage["cache_hits"],
             "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]}
    return kept, stats


def funnel(generated: int, dropped: dict, kept: int) -> list[dict]:
    """The candidates left before and after each filter, in the order they apply (the benchmark card); the last
    step, `target`, is what the per-document cap and round surplus leave out."""
    steps, left = [], generated
    for reason in [*FILTERS, *CRITIC_DROPS]:
        if reason in dropped:
            steps.append({"filter": reason, "before": left, "after": left - dropped[reason]})
            left -= dropped[reason]
    steps.append({"filter": "target", "before": left, "after": kept})
    return steps


def question_record(r: dict, qid: str, source: str) -> dict:
    return {"id": qid, "question": r["question"], "text": r["paragraph"], "document": r["document"],
            "doc_id": r["doc_id"], "page": r["page"], "para_num": r["para_num"], "paragraph_hash": r["paragraph_hash"],
            "language": r.get("language"), "reference": r["answer"], "reference_source": source,
            **({"critic": r["critic"]} if r.get("critic") else {})}


def generated_tasks(cfg: DictConfig) -> tuple[dict, dict, dict]:
    """Split, questions and tasks from the documents themselves."""
    docs = ingested_documents()
    if not docs:
        raise BenchmarkError(f"{resolve_path(MANIFEST)} lists no ingested document: run the ingest stage first")
    paragraphs = read_jsonl(resolve_path(PARAGRAPHS))
    train, bench = split_documents(cfg, docs, paragraphs)
    rows, stats = write_questions(cfg, bench, paragraphs)
    source = f"oracle:{stats['teacher']}"
    corpus = resolve_path(cfg.data.corpus_dir)
    per_doc: dict[str, list[dict]] = {d["doc_id"]: [] for d in bench}
    for r in rows:
        per_doc[r["doc_id"]].append(r)
    names: dict[str, str] = {}
    for d in bench:
        name, k = slug(d["document"]), 2
        while name in names.values() or name == cfg.benchmark.joint_task:
            name, k = f"{slug(d['document'])}-{k}", k + 1
        names[d["doc_id"]] = name
    questions = {d["doc_id"]: [question_record(r, f"{names[d['doc_id']]}-{i:02d}", source)
                               for i, r in enumerate(per_doc[d["doc_id"]], 1)] for d in bench}
    empty = [d["document"] for d in bench if not questions[d["doc_id"]]]
    if empty:
        log.warning("no benchmark question survived the filters for %d document(s): %s (see metrics/benchmark.json)",
                    len(empty), empty)
    if len(empty) == len(bench):
        raise BenchmarkError(f"no benchmark question survived the quality filters ({stats['dropped']}) from the "
                             f"{len(bench)} benchmark documents: raise benchmark.questions_per_document, loosen "
                             "the dataset.* filters (e.g. dataset.min_grounding), or use a stronger teacher")
    tasks: dict[str, dict] = {}
    if cfg.benchmark.per_document_tasks:
        for d in bench:
            if questions[d["doc_id"]]:
                tasks[names[d["doc_id"]]] = {"documents": [d["document"]], "rows": questions[d["doc_id"]]}
    if cfg.benchmark.joint_task:
        tasks[str(cfg.benchmark.joint_task)] = {"documents": [d["document"] for d in bench],
                                               "rows": [q for d in bench for q in questions[d["doc_id"]]]}
    for t in tasks.values():
        t["documents"] = [shown(corpus / name) for name in t["documents"]]
    split = {"mode": "held_out", "train": {d["doc_id"]: d["document"] for d in train},
             "benchmark": {d["doc_id"]: d["document"] for d in bench}}
    stats |= {"documents": len(docs), "train_documents": len(train), "benchmark_documents": len(bench),
              "documents_without_questions": empty}
    return split, tasks, stats


def named_tasks(cfg: DictConfig) -> tuple[dict, dict, dict]:
    """The configured tasks, their question files normalised; nothing held out of training."""
    tasks: dict[str, dict] = {}
    for name, task in cfg.data.tasks.items():
        docs = find_documents(resolve_path(task.documents), list(cfg.ingest.extensions), f"data.tasks.{name}.documents")
        if not docs:
            raise BenchmarkError(f"data.tasks.{name}.documents ({resolve_path(task.documents)}) holds no document "
                                 f"with an extension in ingest.extensions {list(cfg.ingest.extensions)}")
        path = resolve_path(task.questions)
        if not path.exists():
            raise BenchmarkError(f"data.tasks.{name}.questions: {path} does not exist")
        rows = []
        for r in read_benchmark(path):
            reference = str(r.get("reference") or r.get("gpt_response") or "").strip()
            rows.append({"id": str(r["id"]), "question": " ".join(str(r["question"]).split()),
                         "text": str(r.get("text") or ""), "document": str(r.get("document") or ""),
                         "paragraph_hash": sha256_text(" ".join(str(r.get("text") or "").split()))[:16],
                         "reference": reference, "reference_source": cfg.data.reference_source if reference else None})
        tasks[str(name)] = {"documents": [shown(d) for d in docs], "rows": rows, "question_file": shown(path)}
    docs = ingested_documents()
    language = {Path(d["document"]).name: d.get("language") for d in docs}
    for t in tasks.values():  # the languages ingest detected for the task's documents, most common first
        found = Counter(language.get(Path(d).name) for d in t["documents"])
        t["languages"] = [lang for lang, _ in found.most_common() if lang]
    split = {"mode": "named_tasks", "train": {d["doc_id"]: d["document"] for d in docs}, "benchmark": {}}
    stats = {"documents": len(docs), "train_documents": len(docs), "benchmark_documents": 0}
    return split, tasks, stats | flag_invalid(tasks)


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


def card_samples(cfg: DictConfig, rows: list[dict], n: int = 3) -> list[dict]:
    """A seeded handful of a task's questions with their references, for a person to judge the benchmark by."""
    picked = random.Random(f"{cfg.seed}:card").sample(rows, min(n, len(rows)))
    return [{"id": r["id"], "question": r["question"], "reference": r["reference"]} for r in picked]


def task_languages(rows: list[dict]) -> list[str]:
    """The languages a task's questions were written from (their documents' detected languages), most common first."""
    return [lang for lang, _ in Counter(r.get("language") for r in rows if r.get("language")).most_common()]

