"""The data flow's paths between stages, named once, and the benchmark's task list.

Every path is relative to the work root (`pipeline.config.resolve_path`). Stages import their inputs' and
outputs' names from here rather than from each other. The benchmark's tasks are not hard-coded anywhere:
the `benchmark` stage writes them to `TASKS` (named in `data.tasks`, or generated from the documents) and
every later stage reads them back with `tasks()`.
"""
from __future__ import annotations

import json
import re

from pipeline.config import resolve_path

PARAGRAPHS = "data/ingested/paragraphs.jsonl"
MANIFEST = "data/ingested/manifest.json"
SPLIT = "data/split/documents.json"            # which documents train, which are held out for the benchmark
TASKS = "data/benchmark/tasks.json"            # task name -> documents (with hashes), questions file, reference
QUESTIONS_DIR = "data/benchmark/questions"
QUESTIONS = QUESTIONS_DIR + "/{task}.jsonl"    # one normalised question file per task
BENCHMARK_METRICS = "metrics/benchmark.json"
SYNTHETIC = "data/synthetic/qa.jsonl"
DOMAIN_DIR = "data/datasets/domain"
LEAKAGE_METRICS = "metrics/leakage.json"
CHUNKS = "index/chunks/{task}.jsonl"
CHUNK_LENGTHS = "plots/chunk_lengths/{task}.json"  # histogram per task: DVC plot and the report's panel
PAPER_RESCORED = "metrics/paper_rescored.json"
PAPER_RESCORED_TABLE = "results/paper_rescored.json"

def slug(text: str) -> str:
    """A task name from a document name: `Deep Nets (2023).pdf` -> `deep-nets-2023`."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", text)
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:48] or "doc"


def tasks() -> dict[str, dict]:
    """The benchmark's tasks as the benchmark stage wrote them, in their order."""
    path = resolve_path(TASKS)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the benchmark stage first (`dvc repro benchmark` or "
                                "`python -m pipeline.benchmark`)")
    return json.loads(path.read_text(encoding="utf-8"))["tasks"]


def questions_path(task: str) -> str:
    return QUESTIONS.format(task=task)


def answers_path(name: str, task: str, closed_book: bool = False) -> str:
    """Students' answers in results/students/ (their closed-book answers, with no retrieved context, in
    results/students/closed_book/), the reference's in results/reference/."""
    if name == "reference":
        return f"results/reference/{task}.jsonl"
    return f"results/students/{'closed_book/' if closed_book else ''}{name}_{task}.jsonl"
