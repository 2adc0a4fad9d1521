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
QUESTION_SCORES_PLOT = "plots/scores.json"         # each question's cosine and token F1 per variant
VARIANT_SCORES_PLOT = "plots/rescaled_cosine.json"  # each task and variant's rescaled cosine, a bar in dvc plots diff
PAPER_RESCORED = "metrics/paper_rescored.json"
ANSWER_METRICS = "metrics/answer.json"           # the answer stage's timings, per answer set and task
PAPER_RESCORED_TABLE = "results/paper_rescored.json"
# The one file DVC lists as metrics (`dvc exp show`, `dvc metrics diff`): the numbers a person compares across
# experiments, written by the report stage. Every other metrics/*.json is a plain output with the detail.
HEADLINE = "metrics/report.json"

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


def adapter_dir(stage: str, seed: int | None = None) -> str:
    """Where a training stage writes its adapter: models/adapters/<stage> for the run's `seed`, and
    models/adapters/seeds/<seed>/<stage> for each of `train.extra_seeds` (stages train_<stage>_seed@<seed>)."""
    return f"models/adapters/{stage}" if seed is None else f"models/adapters/seeds/{seed}/{stage}"


def train_metrics_path(stage: str, seed: int | None = None) -> str:
    return f"metrics/train_{stage}.json" if seed is None else f"metrics/seeds/{seed}/train_{stage}.json"


def loss_curve_path(stage: str, series: str, seed: int | None = None) -> str:
    """One loss series of a training stage, `train` or `eval`: `step,loss` rows at the steps where it was measured.
    Two files, not one with empty cells, because DVC's plots draw an empty cell as a zero."""
    root = "plots/loss" if seed is None else f"plots/seeds/{seed}/loss"
    return f"{root}/{stage}/{series}.csv"


def seeded(variant: str, seed: int | None) -> str:
    """The name a variant's answers go by when its adapters come from an extra training seed: `domain-seed7`."""
    return variant if seed is None else f"{variant}-seed{seed}"


def answers_path(name: str, task: str, closed_book: bool = False) -> str:
    """Students' answers in results/students/ (their closed-book answers, with no retrieved context, in
    results/students/closed_book/), the reference's in results/reference/."""
    if name == "reference":
        return f"results/reference/{task}.jsonl"
    return f"results/students/{'closed_book/' if closed_book else ''}{name}_{task}.jsonl"
