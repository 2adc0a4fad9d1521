"""Importers: the paper's SAI CSV (with malformed rows) and Alpaca JSON Lines become the same records."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

SAI = Path(__file__).resolve().parent.parent.parent / "shared" / "seed" / "SAI_dataset" / "SAI_dataset_0312.csv"
HEADER = ["page", "para_num", "text", "pdf_name", "text_synthetic"]


def synthetic(question: str, answer: str) -> str:
    return f"Below is an instruction.\n\n### Instruction:\nAnswer.\n\n### Input:\n{question}\n\n### Response:\n{answer}"


def test_sai_csv_counts_every_malformed_row(tmp_path):
    from sling.data.importers import read_sai_csv

    path = tmp_path / "sai.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerow([3, 1, "LoRA  freezes the base.", "a.pdf", synthetic("What is frozen?", "The base.")])
        w.writerow([4, 2, "Second paragraph.", "b.pdf", synthetic("Which one?", "The second.")])
        w.writerow([5, 3, "Too few"])                                                      # too_few_columns
        w.writerow([6, 4, "Extra", "a.pdf", synthetic("Q?", "A."), "stray cell"])           # extra_columns
        w.writerow([7, 5, "No markers", "a.pdf", "a prompt without the markers"])          # no_question_or_answer
        w.writerow(["seven", 6, "Bad page", "a.pdf", synthetic("Q?", "A.")])                # bad_page
    rows, skipped = read_sai_csv(path)
    assert dict(skipped) == {"too_few_columns": 1, "extra_columns": 1, "no_question_or_answer": 1, "bad_page": 1}
    assert [(r["question"], r["answer"], r["page"], r["source_line"]) for r in rows] == [
        ("What is frozen?", "The base.", 3, 2), ("Which one?", "The second.", 4, 3)]
    assert rows[0]["paragraph"] == "LoRA freezes the base." and rows[0]["doc_id"] != rows[1]["doc_id"]
    assert all(len(r["paragraph_hash"]) == 16 for r in rows)


def test_sai_csv_without_usable_rows_fails_naming_the_file(tmp_path):
    from sling.data.importers import read_sai_csv

    path = tmp_path / "bad.csv"
    path.write_text("page,para_num\n1,2\n")
    with pytest.raises(ValueError, match=r"bad\.csv: missing columns"):
        read_sai_csv(path)


@pytest.mark.skipif(not SAI.exists(), reason=f"{SAI} not on this machine")
def test_paper_sai_csv_rows_are_all_accounted_for():
    from sling.data.importers import read_sai_csv

    rows, skipped = read_sai_csv(SAI)
    with open(SAI, encoding="utf-8", newline="") as f:
        records = sum(1 for _ in csv.reader(f)) - 1
    assert len(rows) + sum(skipped.values()) == records  # nothing dropped without a count
    assert len(rows) > 100 and sum(skipped.values()) > 0  # the paper's file has malformed rows


def test_alpaca_jsonl_and_json_array(tmp_path):
    from sling.data.importers import read_alpaca_jsonl

    good = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    lines = tmp_path / "a.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in [good, {"instruction": "", "output": "x"}, {"output": "y"}]))
    rows, skipped = read_alpaca_jsonl(lines)
    assert rows == [good] and skipped["missing_instruction_or_output"] == 2
    array = tmp_path / "a.json"
    array.write_text(json.dumps([good, good | {"input": "ctx"}]))
    rows, skipped = read_alpaca_jsonl(array)
    assert [r["input"] for r in rows] == ["", "ctx"] and not skipped
