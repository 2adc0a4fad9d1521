"""The data flow's paths between stages, named once, and the benchmark's task list.

Every path is relative to the work root (`sling.config.resolve_path`). Stages import their inputs' and
outputs' names from here rather than from each other. The benchmark's tasks are not hard-coded anywhere:
the `benchmark` stage writes them to `TASKS` (named in `data.tasks`, or generated from the documents) and
every later stage reads them back with `tasks()`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from sling.config import resolve_path

# models/: the weights.
PRETRAINED_DIR = "models/pretrained"           # the starting weights as models.dvc tracks them (sling.models.pretrained)
BASE_DIR = "models/base"                       # the base snapshot (stage snapshot_model) that every later stage loads
MODEL_PROVENANCE = "sling_provenance.json"     # beside the weights in BASE_DIR and in each adapter's directory
TRAINING_CONFIG = "sling_config.yaml"          # beside an adapter (and its merged export): the settings it trained with

# data/: ingested paragraphs, the split and the benchmark, the training sets.
PARAGRAPHS = "data/ingested/paragraphs.jsonl"
MANIFEST = "data/ingested/manifest.json"
SPLIT = "data/split/documents.json"            # which documents train, which are held out for the benchmark
TASKS = "data/benchmark/tasks.json"            # task name -> documents (with hashes), questions file, reference
COLLECTIONS = "data/benchmark/collections.json"  # what the index builds: task name -> documents (with hashes)
QUESTIONS_DIR = "data/benchmark/questions"
QUESTIONS = QUESTIONS_DIR + "/{task}.jsonl"    # one normalised question file per task
QUESTIONS_PROVENANCE = QUESTIONS_DIR + "/provenance.json"
# A person's judgements of benchmark questions (scripts/audit.py): written by hand, not by a stage, committed in git
# beside the benchmark's outputs and a dependency of the report stage; an empty file is "not audited".
AUDIT = "data/benchmark/audit.jsonl"
SYNTHETIC = "data/synthetic/qa.jsonl"
SYNTHETIC_PROVENANCE = "data/synthetic/provenance.json"
GENERAL_DIR = "data/datasets/general"          # the general instruction set (stage general_data): train.jsonl, eval.jsonl
GENERAL_PROVENANCE = GENERAL_DIR + "/provenance.json"
DOMAIN_DIR = "data/datasets/domain"            # the domain training set (stage build_dataset): train.jsonl, eval.jsonl
DOMAIN_SPLIT = DOMAIN_DIR + "/split.json"      # which documents the domain set's train and eval sides come from
DATASET_DIRS = {"general": GENERAL_DIR, "domain": DOMAIN_DIR}  # each training stage's data

# index/: the retrieval side (the Qdrant store itself is at rag.qdrant_path).
CHUNKS_DIR = "index/chunks"
CHUNKS = CHUNKS_DIR + "/{task}.jsonl"
INDEX_PROVENANCE = "index/provenance.json"

# results/: the answers and the per-question scores.
REFERENCE_DIR = "results/reference"            # the reference answers, one file per task (stage reference)
STUDENTS_DIR = "results/students"              # the students' answers (stage answer): answers_path()
PER_QUESTION = "results/per_question.json"     # each question's scores per variant (stage score)
PAPER_RESCORED_TABLE = "results/paper_rescored.json"

# metrics/: one file per stage, each a plain output with the detail.
METRICS_DIR = "metrics"
INGEST_METRICS = "metrics/ingest.json"
BENCHMARK_METRICS = "metrics/benchmark.json"
SYNTHESIZE_METRICS = "metrics/synthesize.json"
DATASET_METRICS = "metrics/dataset.json"       # the build_dataset stage's
GENERAL_DATA_METRICS = "metrics/general_data.json"
LEAKAGE_METRICS = "metrics/leakage.json"
INDEX_METRICS = "metrics/index.json"
ANSWER_METRICS = "metrics/answer.json"           # the answer stage's timings, per answer set and task
SCORES = "metrics/scores.json"                   # every variant's scores per task (stage score), read by the report
PAPER_RESCORED = "metrics/paper_rescored.json"
# The one file DVC lists as metrics (`dvc exp show`, `dvc metrics diff`): the numbers a person compares across
# experiments, written by the report stage. Every other metrics/*.json is a plain output with the detail.
HEADLINE = "metrics/report.json"

# plots/ and reports/.
LOSS_DIR = "plots/loss"                            # the loss curves of the run's seed: loss_curve_path()
CHUNK_LENGTHS = "plots/chunk_lengths/{task}.json"  # histogram per task: DVC plot and the report's panel
QUESTION_SCORES_PLOT = "plots/scores.json"         # each question's cosine and token F1 per variant
VARIANT_SCORES_PLOT = "plots/rescaled_cosine.json"  # each task and variant's rescaled cosine, a bar in dvc plots diff
REPORTS_DIR = "reports"
REPORT = REPORTS_DIR + "/report.html"              # the page a person opens (stage report)

# Outside the pipeline: what scripts/ write, relative to the repository.
STUDY_DIR = "results/study"                        # scripts/study.py's combined study
DOCUMENTS_RUN_DIR = "results/documents"            # scripts/documents_run.py's record of a data=documents run
DOCUMENTS_RUN = DOCUMENTS_RUN_DIR + "/run.json"


def slug(text: str) -> str:
    """A task name from a document name: `Deep Nets (2023).pdf` -> `deep-nets-2023`."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", text)
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:48] or "doc"


def produced(path: str, stage: str) -> Path:
    """`path` (one of the names above) under the work root, which the DVC stage `stage` writes: a missing one is a
    FileNotFoundError that names the stage to run (sling.cli reports it in one line)."""
    resolved = resolve_path(path)
    if not resolved.exists():
        raise FileNotFoundError(f"{resolved} is missing: run the {stage} stage first (`dvc repro {stage}`)")
    return resolved


def tasks() -> dict[str, dict]:
    """The benchmark's tasks as the benchmark stage wrote them, in their order."""
    path = resolve_path(TASKS)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the benchmark stage first (`dvc repro benchmark` or "
                                "`python -m pipeline.benchmark`)")
    return json.loads(path.read_text(encoding="utf-8"))["tasks"]


def collections() -> dict[str, dict]:
    """The index's collections as the benchmark stage listed them: every task the split allows (a superset of
    `tasks()`), each with its documents and their hashes."""
    return json.loads(produced(COLLECTIONS, "benchmark").read_text(encoding="utf-8"))["collections"]


def questions_path(task: str) -> str:
    return QUESTIONS.format(task=task)


def adapter_dir(stage: str, seed: int | None = None) -> str:
    """Where a training stage writes its adapter: models/adapters/<stage> for the run's `seed`, and
    models/adapters/seeds/<seed>/<stage> for each of `train.extra_seeds` (stages train_<stage>_seed@<seed>)."""
    return f"models/adapters/{stage}" if seed is None else f"models/adapters/seeds/{seed}/{stage}"


def dataset_path(directory: str | os.PathLike, side: str) -> str:
    """One side, `train` or `eval`, of a training set in `directory` (GENERAL_DIR or DOMAIN_DIR, or a directory laid
    out like them)."""
    return f"{directory}/{side}.jsonl"


def checkpoint_dir(stage: str, seed: int | None = None) -> str:
    """Where a training stage keeps its checkpoints, to resume from (not a DVC output)."""
    return f"checkpoints/{stage}" if seed is None else f"checkpoints/{stage}-seed{seed}"


def merged_dir(stage: str, seed: int | None = None) -> str:
    """Where a training stage exports its student with the adapters merged in (`train.merge_export`)."""
    return f"models/merged/{stage}" if seed is None else f"models/merged/{stage}-seed{seed}"


def export_dir(variant: str) -> str:
    """Where the export stage writes a variant's merged, GGUF and Ollama forms (stage export@<variant>)."""
    return f"models/export/{variant}"


def export_metrics_path(variant: str) -> str:
    """The export stage's figures per form (KL divergence and top-1 agreement with the adapter)."""
    return f"metrics/export/{variant}.json"


def train_metrics_path(stage: str, seed: int | None = None) -> str:
    return f"metrics/train_{stage}.json" if seed is None else f"metrics/seeds/{seed}/train_{stage}.json"


def loss_curve_path(stage: str, series: str, seed: int | None = None) -> str:
    """One loss series of a training stage, `train` or `eval`: `step,loss` rows at the steps where it was measured.
    Two files, not one with empty cells, because DVC's plots draw an empty cell as a zero."""
    root = LOSS_DIR if seed is None else f"plots/seeds/{seed}/loss"
    return f"{root}/{stage}/{series}.csv"


def seeded(variant: str, seed: int | None) -> str:
    """The name a variant's answers go by when its adapters come from an extra training seed: `domain-seed7`."""
    return variant if seed is None else f"{variant}-seed{seed}"


def answers_path(name: str, task: str, closed_book: bool = False) -> str:
    """Students' answers in results/students/ (their closed-book answers, with no retrieved context, in
    results/students/closed_book/), the reference's in results/reference/."""
    if name == "reference":
        return f"{REFERENCE_DIR}/{task}.jsonl"
    return f"{STUDENTS_DIR}/{'closed_book/' if closed_book else ''}{name}_{task}.jsonl"
