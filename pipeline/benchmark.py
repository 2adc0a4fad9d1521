"""Stage benchmark: the document split, the benchmark's tasks and their questions with reference answers.

    python -m pipeline.benchmark                                  # reads params.yaml
    python -m pipeline.benchmark data=documents data.corpus_dir=~/papers benchmark.questions_per_document=12

Two modes, chosen by `data.tasks`:

- Named tasks (`data=sample`, `data=paper`): each task names its documents and a question file; the questions are
  normalised into `data/benchmark/questions/<task>.jsonl` (id, question, source paragraph, document, reference).
  Nothing is held out of training (the split says so, and the leakage stage counts the overlap).
- Generated (`data.tasks: {}`, `data=documents`): the ingested documents are split, seeded and by document, into
  training and benchmark documents (`data.split`: a share, or named documents). The teacher writes one question
  from each of `benchmark.questions_per_document` sampled paragraphs of every benchmark document (its own prompt
  version), then answers it from that paragraph alone: the oracle reference. The training set's quality filters
  apply, with counts. Tasks: one per benchmark document and one over all of them (`benchmark.joint_task`).

Outputs: `data/split/documents.json` (the split manifest, which synthesize reads), `data/benchmark/tasks.json`
(task -> documents with their hashes, question file, reference source) and the question files; counts in
`metrics/benchmark.json`. The documents' hashes in tasks.json make the index follow any change to them.
"""
from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.cli import run
from pipeline.config import ConfigError, UserError, load_config, resolve_path, work_root
from pipeline.importers import read_benchmark
from pipeline.ingest import find_documents
from pipeline.io import provenance, read_json, read_jsonl, sha256_file, sha256_text, write_json, write_jsonl
from pipeline.paths import (BENCHMARK_METRICS, MANIFEST, PARAGRAPHS, QUESTIONS_DIR, SPLIT, TASKS, questions_path,
                            slug)
from pipeline.quality import filter_rows
from pipeline.tracking import log_dataset, log_metrics, stage_run

log = logging.getLogger("benchmark")

QUESTIONS_PROVENANCE = QUESTIONS_DIR + "/provenance.json"


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


def split_documents(cfg: DictConfig, docs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(training, benchmark) documents. Named documents win over the share; otherwise the documents are ranked
    by a seeded hash of their content and the first share is held out, so adding a document to the folder moves
    at most that one document between the sides."""
    named = list(cfg.data.split.benchmark_documents or [])
    if named:
        by_name = {d["document"]: d for d in docs}
        unknown = [n for n in named if n not in by_name]
        if unknown:
            raise ConfigError(f"data.split.benchmark_documents names {unknown}, which ingest did not produce; the "
                              f"ingested documents are {sorted(by_name)} (names relative to data.corpus_dir)")
        if len(set(named)) >= len(docs):
            raise ConfigError("data.split.benchmark_documents holds out every document: leave some to train on")
        bench = [by_name[n] for n in dict.fromkeys(named)]
    else:
        if len(docs) < 2:
            raise BenchmarkError(f"{len(docs)} document(s) ingested: a held-out benchmark needs at least two, one to "
                                 "train on and one to test on; add documents to data.corpus_dir")
        n = min(max(1, round(len(docs) * cfg.data.split.benchmark_fraction)), len(docs) - 1)
        rank = sorted(docs, key=lambda d: hashlib.sha256(f"{cfg.seed}:{d['sha256']}".encode()).hexdigest())
        bench = rank[:n]
    held = {d["doc_id"] for d in bench}
    return [d for d in docs if d["doc_id"] not in held], sorted(bench, key=lambda d: d["document"])


def sample_paragraphs(cfg: DictConfig, paragraphs: list[dict], doc: dict, exclude: set[str]) -> list[dict]:
    """`benchmark.questions_per_document` paragraphs of one document, seeded, in reading order; never one whose
    text is also a training document's paragraph (`exclude`: their hashes), as boilerplate shared by documents is."""
    own = [p for p in paragraphs if p["doc_id"] == doc["doc_id"] and p["paragraph_hash"] not in exclude]
    long_enough = [p for p in own if len(p["text"]) >= cfg.benchmark.min_paragraph_chars] or own
    k = min(cfg.benchmark.questions_per_document, len(long_enough))
    picked = random.Random(f"{cfg.seed}:{doc['doc_id']}").sample(long_enough, k)
    return sorted(picked, key=lambda p: p["para_num"])


def write_questions(cfg: DictConfig, bench: list[dict], paragraphs: list[dict]) -> tuple[list[dict], dict]:
    """The teacher's questions and oracle answers for the benchmark documents' sampled paragraphs, filtered."""
    from pipeline.teacher import CachedCalls, make_teacher

    held = {d["doc_id"] for d in bench}
    training = {p["paragraph_hash"] for p in paragraphs if p["doc_id"] not in held}
    sampled = [p for d in bench for p in sample_paragraphs(cfg, paragraphs, d, training)]
    teacher = make_teacher(cfg)
    calls = CachedCalls(cfg, teacher, cfg.benchmark.prompt_version)
    b = cfg.benchmark
    questions = calls.run([b.question_prompt.format(paragraph=p["text"]) for p in sampled], "benchmark questions")
    asked = [(p, q) for p, q in zip(sampled, questions) if q]
    answers = calls.run([b.answer_prompt.format(paragraph=p["text"], question=q) for p, q in asked], "oracle answers")
    if calls.failures:
        raise BenchmarkError(f"{len(calls.failures)} teacher calls failed (first: {calls.failures[0]}); the "
                             f"{calls.usage['calls']} finished calls are cached, re-run to retry")
    rows = [{"doc_id": p["doc_id"], "document": p["document"], "page": p["page"], "para_num": p["para_num"],
             "paragraph": p["text"], "paragraph_hash": p["paragraph_hash"], "question": " ".join(q.split()),
             "answer": a.strip()} for (p, q), a in zip(asked, answers) if a is not None]
    kept, dropped, _ = filter_rows(cfg.dataset, rows, percentile=0)
    stats = {"sampled_paragraphs": len(sampled), "generated": len(rows), "kept": len(kept), "dropped": dict(dropped),
             "teacher": teacher.name, "calls": calls.usage["calls"], "cache_hits": calls.usage["cache_hits"],
             "prompt_tokens": calls.usage["prompt_tokens"], "completion_tokens": calls.usage["completion_tokens"]}
    return kept, stats


def question_record(r: dict, qid: str, source: str) -> dict:
    return {"id": qid, "question": r["question"], "text": r["paragraph"], "document": r["document"],
            "doc_id": r["doc_id"], "page": r["page"], "para_num": r["para_num"], "paragraph_hash": r["paragraph_hash"],
            "reference": r["answer"], "reference_source": source}


def generated_tasks(cfg: DictConfig) -> tuple[dict, dict, dict]:
    """Split, questions and tasks from the documents themselves."""
    docs = ingested_documents()
    if not docs:
        raise BenchmarkError(f"{resolve_path(MANIFEST)} lists no ingested document: run the ingest stage first")
    train, bench = split_documents(cfg, docs)
    rows, stats = write_questions(cfg, bench, read_jsonl(resolve_path(PARAGRAPHS)))
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
                             "conf/dataset (e.g. dataset.min_grounding), or use a stronger teacher")
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
        docs = find_documents(resolve_path(task.documents), list(cfg.ingest.extensions))
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
    split = {"mode": "named_tasks", "train": {d["doc_id"]: d["document"] for d in docs}, "benchmark": {}}
    return split, tasks, {"documents": len(docs), "train_documents": len(docs), "benchmark_documents": 0}


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("benchmark", cfg):
        split, tasks, stats = generated_tasks(cfg) if not cfg.data.tasks else named_tasks(cfg)
        qdir = resolve_path(QUESTIONS_DIR)
        for old in qdir.glob("*.jsonl") if qdir.is_dir() else []:
            if old.stem not in tasks:
                old.unlink()  # a task that no longer exists
        listing = {}
        for name, t in tasks.items():
            write_jsonl(resolve_path(questions_path(name)), t.pop("rows") if "rows" in t else [])
            listing[name] = t | {"questions": questions_path(name),
                                 "document_sha256": {d: sha256_file(resolve_path(d)) for d in t["documents"]}}
            stats.setdefault("tasks", {})[name] = sum(1 for _ in open(resolve_path(questions_path(name)), encoding="utf-8"))
        # Each output's provenance names only what shapes it, so that a benchmark-side change (say, more questions)
        # leaves the split and the task list byte-identical and DVC re-runs neither training nor indexing.
        split_conf = {"seed": cfg.seed, "split": OmegaConf.to_container(cfg.data.split, resolve=True)}
        write_json(resolve_path(SPLIT), split | {"provenance": provenance("benchmark", split_conf)})
        write_json(resolve_path(TASKS), {"tasks": listing, "mode": split["mode"]})
        write_json(resolve_path(QUESTIONS_PROVENANCE), provenance("benchmark", {
            "seed": cfg.seed, "benchmark": OmegaConf.to_container(cfg.benchmark, resolve=True),
            "teacher": stats.get("teacher"), "reference_source": cfg.data.reference_source}))
        write_json(resolve_path(BENCHMARK_METRICS), stats)
        log_metrics({k: v for k, v in stats.items() if k != "documents_without_questions"}, prefix="benchmark.")
        for name in tasks:
            log_dataset(resolve_path(questions_path(name)), f"benchmark-{name}", "evaluation")
        log.info("%s: %d training / %d benchmark documents; tasks %s", split["mode"], stats["train_documents"],
                 stats["benchmark_documents"], stats["tasks"])


if __name__ == "__main__":
    run(main)
