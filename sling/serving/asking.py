"""Asking a finished run's student: questions answered from the run's index with a variant's adapters, through the
answer stage's own retrieval, prompt and decoding (sling.retrieval.answering: `retrieve_prompts`, `load_answerer`,
`answer_locally`), so an answer here is the answer stage's to the same question with the same settings.

Owns what a run serves (`Serving`: the run, the task whose index is searched, the variant, by default the report's
best, and its adapters), the check that the run's outputs are there before anything loads, and the typed answers
(`Asked`) that `sling ask` prints and `sling chat` shows. The students answer in this process, with transformers
(`rag.engine=openai` is the answer stage's alone). The command lines are in sling/commands.py.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sling.config import resolve_path, work_root
from sling.errors import ConfigError, InputError, UserError
from sling.io import read_json, sha256_text
from sling.models.loading import VARIANTS, adapter_dirs_for, load_tokenizer
from sling.paths import BASE_DIR, HEADLINE, MODEL_PROVENANCE, TASKS, tasks
from sling.retrieval.answering import answer_locally, check_collection, load_answerer, retrieve_prompts
from sling.embed import embed
from sling.retrieval.store import qdrant_client
from sling.schema import Data, Model, Rag

BEST_BY = "rescaled"  # the report's headline score per variant (metrics/report.json): the rescaled cosine
RUN_FIRST = "sling answers from a finished run's index and adapters: run `dvc repro` first"  # then the stage


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as the prompt held it, with where it came from."""

    document: str
    pages: list[int]
    score: float
    text: str

    def where(self) -> str:
        pages = ([f"p. {self.pages[0]}"] if len(self.pages) == 1 else
                 [f"pp. {self.pages[0]}-{self.pages[-1]}"] if self.pages else [])
        return ", ".join([Path(self.document).name, *pages])


@dataclass(frozen=True)
class Reply:
    """One variant's answer: its text, tokens, and its share of the batch's decoding time."""

    variant: str
    answer: str
    answer_tokens: int
    seconds: float


@dataclass
class Asked:
    """A question, the passages retrieved for it (the same for every variant) and each variant's reply."""

    question: str
    task: str
    passages: list[Passage]
    retrieval_s: float
    replies: dict[str, Reply] = field(default_factory=dict)


@dataclass(frozen=True)
class Adapter:
    name: str
    path: str
    version: str  # its hash as dvc.lock records it, else the sha256 of its provenance file


@dataclass(frozen=True)
class Serving:
    """Which run, task and variant are served, and why that variant."""

    root: str
    commit: str | None
    data: str
    model: str
    task: str
    documents: int
    variant: str
    chosen: str
    adapters: dict[str, list[Adapter]]

    def run(self) -> str:
        return (f"{self.root} (git {self.commit or 'none'}), data={self.data}, model={self.model}, "
                f"index of task {self.task} ({self.documents} documents)")

    def adapters_of(self, variant: str) -> str:
        found = self.adapters.get(variant, [])
        return ", ".join(f"{a.path} ({a.version})" for a in found) or "none (the base model alone)"

    def lines(self) -> list[str]:
        return [f"run: {self.run()}", f"variant: {self.variant} ({self.chosen})",
                *(f"adapters of {v}: {self.adapters_of(v)}" for v in self.adapters)]


def check_run(rag: Rag) -> None:
    """The run's outputs that answering reads are there, or one InputError naming the first missing one and the
    command that makes it."""
    needed = [] if rag.qdrant_url else [(resolve_path(rag.qdrant_path), "index")]
    needed += [(resolve_path(TASKS), "benchmark"), (resolve_path(BASE_DIR) / "config.json", "snapshot_model")]
    for path, stage in needed:
        if not path.exists():
            raise InputError(f"{path} is missing: {RUN_FIRST} in {work_root()} (`dvc repro {stage}` makes this one)")


def default_task() -> str:
    """The task whose index covers the most documents (the first such, in the benchmark's order)."""
    listed = tasks()
    return max(listed, key=lambda t: len(listed[t].get("documents", [])))


def check_task(task: str) -> None:
    if task not in tasks():
        raise ConfigError(f"unknown task {task!r}: this run's tasks are {', '.join(tasks())} ({resolve_path(TASKS)})")


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")


def best_variant(task: str, among: tuple[str, ...] = tuple(VARIANTS)) -> tuple[str, str]:
    """The report's best variant of `among` on `task` by its headline score, and a phrase saying so."""
    path = resolve_path(HEADLINE)
    if not path.exists():
        raise InputError(f"{path} is missing, so there is no best variant to default to: run the report stage "
                         "(`dvc repro report`), or name one with --variant base|general|domain")
    scores = {v: s[BEST_BY] for v, s in read_json(path).get(task, {}).items()
              if v in among and isinstance(s, dict) and BEST_BY in s}
    if not scores:
        raise InputError(f"{path} has no {BEST_BY} score for task {task}: re-run the report stage "
                         "(`dvc repro report`), or name a variant with --variant base|general|domain")
    best = max(scores, key=scores.get)
    return best, f"the report's best on task {task}: rescaled cosine {scores[best]:.3f}, {HEADLINE}"


def adapters(variant: str) -> list[Adapter]:
    """The adapters `variant` stacks, in order, each with the version dvc.lock records for it, else its provenance's."""
    locked = dvc_lock_hashes()
    out = []
    for name in VARIANTS[variant]:
        rel = adapter_dirs_for()[name]
        prov = resolve_path(rel) / MODEL_PROVENANCE
        version = (f"dvc md5 {locked[rel][:12]}" if rel in locked else
                   f"provenance sha256 {sha256_text(prov.read_text(encoding='utf-8'))[:12]}" if prov.exists() else
                   "no provenance")
        out.append(Adapter(name, rel, version))
    return out


def dvc_lock_hashes() -> dict[str, str]:
    """Each stage output's hash (path -> md5) in the work root's dvc.lock; empty without one."""
    import yaml

    path = work_root() / "dvc.lock"
    if not path.exists():
        return {}
    stages = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {o["path"]: o["md5"] for s in stages.values() for o in s.get("outs", []) if "md5" in o}


def git_commit() -> str | None:
    """The work root's git commit, None outside a git checkout."""
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=work_root(), capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def serving(data: Data, model: Model, rag: Rag, task: str | None = None, variant: str | None = None,
            also: tuple[str, ...] = (), among: tuple[str, ...] = tuple(VARIANTS)) -> Serving:
    """What this run (`data.name`, `model.name`, its index at `rag`) serves for `task` (default: the widest) and
    `variant` (default: the report's best of `among`), with the adapters of `variant` and of every variant in
    `also`."""
    check_run(rag)
    task = task or default_task()
    check_task(task)
    if variant:
        check_variant(variant)
        chosen = "chosen with --variant"
    else:
        variant, chosen = best_variant(task, among)
    return Serving(root=str(work_root()), commit=git_commit(), data=str(data.name), model=str(model.name),
                   task=task, documents=len(tasks()[task].get("documents", [])), variant=variant, chosen=chosen,
                   adapters={v: adapters(v) for v in dict.fromkeys([variant, *also])})


class Student:
    """The run's index and its students, loaded once, asked many times: retrieval from the task's collection, the
    answer stage's prompt and decoding. Not thread-safe (one embedded Qdrant client, one torch model per variant):
    callers that serve several requests hold a lock."""

    def __init__(self, model: Model, rag: Rag, task: str):
        t0 = time.perf_counter()
        self.model_cfg, self.rag, self.task = model, rag, task
        self.client = open_index(rag)
        try:
            check_collection(rag, self.client, task)
            self.tokenizer = load_tokenizer()
            embed(rag.embedder, [task])  # loads the embedder now, so that retrieval times are retrieval's own
        except BaseException:
            self.client.close()
            raise
        self.models: dict[str, object] = {}
        self.load_s = time.perf_counter() - t0

    def model(self, variant: str):
        if variant not in self.models:
            t0 = time.perf_counter()
            self.models[variant] = load_answerer(self.model_cfg, self.rag, variant)
            self.load_s += time.perf_counter() - t0
        return self.models[variant]

    def ask(self, questions: list[str], variants: list[str]) -> list[Asked]:
        """Each question retrieved once and answered by every variant in `variants`, in one batch per variant."""
        t0 = time.perf_counter()
        rows = [{"id": f"ask-{i}", "question": q} for i, q in enumerate(questions)]
        chunks, prompts = retrieve_prompts(self.rag, self.client, self.task, rows)
        share = (time.perf_counter() - t0) / max(len(questions), 1)
        asked = [Asked(q, self.task, [Passage(c["document"], list(c["pages"]), c["score"], c["text"]) for c in found],
                       round(share, 4)) for q, found in zip(questions, chunks)]
        for variant in variants:
            model = self.model(variant)
            for a, r in zip(asked, answer_locally(self.model_cfg, self.rag, model, self.tokenizer, prompts)):
                a.replies[variant] = Reply(variant, r["answer"], r["answer_tokens"], r["latency_s"])
        return asked

    def close(self) -> None:
        self.client.close()


def open_index(rag: Rag):
    """The run's Qdrant client; an embedded store that another process holds open is a UserError saying so."""
    try:
        return qdrant_client(rag)
    except RuntimeError as e:
        if "already accessed" not in str(e):
            raise
        raise UserError(f"the index at {resolve_path(rag.qdrant_path)} is open in another process (a running "
                        "`sling chat`, or a stage): stop it and try again, or serve the index from a Qdrant server "
                        "(rag.qdrant_url)") from e


def read_questions(path: str | Path) -> list[str]:
    """One question per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} is missing: --file takes a text file with one question per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8, one question "
                         "per line") from e
    questions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not questions:
        raise InputError(f"{path} holds no question: write one question per line")
    return questions
