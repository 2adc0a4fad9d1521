"""A person's audit of the benchmark: sampled questions judged valid or invalid (and why), kept in AUDIT
(data/benchmark/audit.jsonl) beside the benchmark, and the validity rate with its Wilson interval, which the report's
benchmark card and verdict cite. Command line: `scripts/audit.py`; read by the report stage.

Each judgement names its question by id and by a hash of the question and its reference, so a re-generated benchmark
whose question under the same id differs does not inherit the old judgement: such a judgement is stale, counted and
ignored.
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from sling.config import resolve_path
from sling.errors import InputError
from sling.io import read_jsonl, sha256_text, write_jsonl
from sling.paths import questions_path, tasks
from sling.scoring.stats import wilson_interval

NOT_AUDITED = "not audited by a person"
ANSWERS = {"valid": True, "invalid": False, "true": True, "false": False, "yes": True, "no": False, "y": True,
           "n": False, "1": True, "0": False}


@dataclass(frozen=True)
class Item:
    """One benchmark question as a person sees it: the question, its reference answer and its source paragraph."""
    id: str
    task: str
    question: str
    reference: str
    paragraph: str
    document: str
    page: object

    @property
    def hash(self) -> str:
        return item_hash(self.question, self.reference)


def item_hash(question: str, reference: str) -> str:
    """What a judgement was about: the question with its reference (a judgement of one says nothing of another)."""
    return sha256_text(f"{question}\n{reference}")[:16]


def benchmark_items() -> list[Item]:
    """Every question of the benchmark the benchmark stage wrote, once: the joint task repeats the per-document tasks'
    questions, so each is named by its smallest task (its document's), the tasks taken smallest first."""
    rows = {task: read_jsonl(resolve_path(questions_path(task))) for task in tasks()}
    items: dict[tuple[str, str], Item] = {}
    for task in sorted(rows, key=lambda t: len(rows[t])):
        for r in rows[task]:
            hops = r.get("hops") or []  # a multi-hop question: `text` holds its paragraphs, `hops` their documents
            where = " + ".join(f"{h['document']}, page {h['page']}" for h in hops)
            item = Item(str(r["id"]), task, str(r["question"]), str(r.get("reference") or ""), str(r.get("text") or ""),
                        where or str(r.get("document") or ""), None if hops else r.get("page"))
            items.setdefault((item.id, item.hash), item)
    return list(items.values())


def read_judgements(path: str | Path) -> list[dict]:
    """The audit file's judgements, oldest first; a missing or empty file holds none."""
    path = Path(path)
    return read_jsonl(path) if path.exists() else []


def judgement(item: Item, valid: bool, why: str) -> dict:
    return {"id": item.id, "item_hash": item.hash, "task": item.task, "question": item.question, "valid": valid,
            "why": why.strip()}


def save_judgements(path: str | Path, old: list[dict], new: list[dict]) -> list[dict]:
    """Write the audit file: the old judgements with `new` added, a new judgement of the same question (id and hash)
    replacing the old one; stale judgements stay in the file, as the record of what a person said."""
    replaced = {(j["id"], j["item_hash"]) for j in new}
    merged = [j for j in old if (j["id"], j["item_hash"]) not in replaced] + new
    write_jsonl(path, merged)
    return merged


def unjudged_sample(items: list[Item], judgements: list[dict], n: int, seed: int) -> list[Item]:
    """Up to `n` questions no one has judged yet, drawn seeded (the same draw for the same benchmark and audit)."""
    done = {(j["id"], j["item_hash"]) for j in judgements}
    todo = [it for it in items if (it.id, it.hash) not in done]
    return random.Random(f"{seed}:audit").sample(todo, min(n, len(todo)))


def parse_valid(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    found = ANSWERS.get(str(value).strip().lower())
    if found is None:
        raise InputError(f"{where}: valid is {value!r}; write valid or invalid (or true/false, yes/no, 1/0)")
    return found


def read_answers(path: str | Path, items: list[Item]) -> list[dict]:
    """Judgements from a file of answers: JSON Lines (`{"id": ..., "valid": true, "why": ...}`) or CSV with the
    columns id, valid, why. Every id must be a question of the current benchmark."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = read_jsonl(path)
    by_id = {it.id: it for it in items}
    out, unknown = [], []
    for i, r in enumerate(rows, 1):
        if "id" not in r or "valid" not in r:
            raise InputError(f"{path}: answer {i} has no {'id' if 'id' not in r else 'valid'}: every answer needs "
                             "id and valid (why is optional)")
        item = by_id.get(str(r["id"]))
        if item is None:
            unknown.append(str(r["id"]))
            continue
        out.append(judgement(item, parse_valid(r["valid"], f"{path}: answer {i}"), str(r.get("why") or "")))
    if unknown:
        raise InputError(f"{path}: {len(unknown)} id(s) are no question of the current benchmark: "
                         f"{', '.join(unknown[:10])}")
    return out


@dataclass(frozen=True)
class Audit:
    """The audit of the current benchmark: how many questions a person judged, how many valid, the Wilson interval
    at `ci`, and the judgements left aside as stale (about a question no longer in the benchmark)."""
    judged: int
    valid: int
    stale: int
    ci: float
    interval: list[float]
    invalid_why: list[str]

    @property
    def rate(self) -> float | None:
        return self.valid / self.judged if self.judged else None

    def line(self) -> str:
        """'a person judged 21 of 25 valid: 84% [65%, 94%]', or 'not audited by a person'; stale judgements said."""
        if self.judged:
            lo, hi = self.interval
            said = (f"a person judged {self.valid} of {self.judged} valid: {self.rate:.0%} [{lo:.0%}, {hi:.0%}] "
                    f"(Wilson {self.ci:.0%} interval)")
        else:
            said = NOT_AUDITED
        if self.stale:
            said += (f"; {self.stale} stale judgement{'s' if self.stale != 1 else ''} (of questions no longer in the "
                     "benchmark) ignored")
        return said

    def headline(self) -> dict:
        """For metrics/report.json: empty when not audited, so an unaudited run's headline keeps its keys."""
        if not self.judged:
            return {}
        return {"benchmark_audit": {"judged": self.judged, "valid": self.valid, "rate": round(self.rate, 4),
                                    "low": self.interval[0], "high": self.interval[1], "stale": self.stale}}


def summarise(judgements: list[dict], items: list[Item], ci: float) -> Audit:
    """The audit of `items` (the current benchmark) from the judgements: the latest judgement of each question whose
    id and hash match one of the items counts; the others are stale."""
    current = {(it.id, it.hash) for it in items}
    latest = {(j["id"], j["item_hash"]): j for j in judgements}
    fresh = [j for key, j in latest.items() if key in current]
    valid = sum(bool(j["valid"]) for j in fresh)
    return Audit(judged=len(fresh), valid=valid, stale=len(latest) - len(fresh), ci=ci,
                 interval=wilson_interval(valid, len(fresh), ci),
                 invalid_why=[j.get("why") or "" for j in fresh if not j["valid"]])


def audit_of_benchmark(path: str | Path, ci: float) -> Audit:
    """The audit file at `path` against the benchmark the benchmark stage wrote."""
    return summarise(read_judgements(path), benchmark_items(), ci)


def show(item: Item) -> str:
    """A question as the terminal shows it to the person judging it."""
    page = f", page {item.page}" if item.page not in (None, "") else ""
    return (f"[{item.task}] {item.id}  ({item.document}{page})\n\nParagraph:\n{item.paragraph}\n\n"
            f"Question:  {item.question}\nReference: {item.reference}\n")
