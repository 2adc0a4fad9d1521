"""Importers that turn the paper's files into this project's records.

- `read_sai_csv`: the paper's SAI_dataset_0312.csv (paragraph, pdf name, Alpaca-style `text_synthetic`
  with `### Input:` question and `### Response:` answer). Some rows carry stray extra columns or a
  prompt without the markers; they are counted and skipped, never silently dropped.
- `read_alpaca_jsonl`: Alpaca rows (`instruction`, `input`, `output`), JSON Lines or a JSON array.
- `read_benchmark`: the benchmark question files (the paper's `;`-separated CSV or our JSON Lines).
"""
from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from pathlib import Path

from sling.errors import InputError
from sling.io import read_jsonl, sha256_text

log = logging.getLogger(__name__)

_SAI = re.compile(r"###\s*Input:\s*(?P<question>.*?)\s*###\s*Response:\s*(?P<answer>.*)\Z", re.S)


def read_sai_csv(path: str | Path) -> tuple[list[dict], Counter]:
    """Records with document, page, paragraph, question, answer; and the skip counts by reason."""
    path = Path(path)
    rows, skipped = [], Counter()
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])  # an empty file: every column missing
        need = ["page", "para_num", "text", "pdf_name", "text_synthetic"]
        missing = [c for c in need if c not in header]
        if missing:
            raise InputError(f"{path}: missing columns {missing}; expected the paper's SAI CSV header {need}")
        idx = {c: header.index(c) for c in need}
        for lineno, rec in enumerate(reader, 2):
            if len(rec) < len(need):
                skipped["too_few_columns"] += 1
                continue
            if any(cell.strip() for cell in rec[len(need):]):
                skipped["extra_columns"] += 1
                continue
            m = _SAI.search(rec[idx["text_synthetic"]])
            if not m or not m.group("question").strip() or not m.group("answer").strip():
                skipped["no_question_or_answer"] += 1
                continue
            paragraph = " ".join(rec[idx["text"]].split())
            try:
                page = int(rec[idx["page"]])
            except ValueError:
                skipped["bad_page"] += 1
                continue
            rows.append({"document": rec[idx["pdf_name"]].strip(), "doc_id": sha256_text(rec[idx["pdf_name"]].strip())[:12],
                         "page": page, "para_num": rec[idx["para_num"]], "paragraph": paragraph,
                         "paragraph_hash": sha256_text(paragraph)[:16],
                         "question": " ".join(m.group("question").split()), "answer": m.group("answer").strip(),
                         "source_line": lineno})
    if skipped:
        log.warning("%s: skipped %d malformed rows %s", path, sum(skipped.values()), dict(skipped))
    if not rows:
        raise InputError(f"{path}: no usable rows ({dict(skipped)})")
    return rows, skipped


def read_alpaca_jsonl(path: str | Path) -> tuple[list[dict], Counter]:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if text.lstrip().startswith("[") else read_jsonl(path)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not a valid JSON array of Alpaca rows ({e}); fix the file") from e
    rows, skipped = [], Counter()
    for r in raw:
        if not isinstance(r, dict) or not str(r.get("instruction", "")).strip() or not str(r.get("output", "")).strip():
            skipped["missing_instruction_or_output"] += 1
            continue
        rows.append({"instruction": r["instruction"].strip(), "input": str(r.get("input") or "").strip(),
                     "output": str(r["output"]).strip()})
    if skipped:
        log.warning("%s: skipped %d malformed rows %s", path, sum(skipped.values()), dict(skipped))
    if not rows:
        raise InputError(f"{path}: no Alpaca rows with instruction and output")
    return rows, skipped


def read_benchmark(path: str | Path) -> list[dict]:
    """Questions with id, question, source paragraph `text`, document, and `gpt_response` when present."""
    path = Path(path)
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
    else:
        with open(path, encoding="utf-8", newline="") as f:
            rows = [dict(r) for r in csv.DictReader(f, delimiter=";")]
        for i, r in enumerate(rows, 1):
            r.setdefault("id", f"{path.stem}-{i:02d}")
            r["document"] = r.get("pdf_name", "")
    for r in rows:
        if not str(r.get("question", "")).strip():
            raise InputError(f"{path}: question {r.get('id')} is empty")
    return rows
