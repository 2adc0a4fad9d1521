"""The general instruction set (Alpaca-style rows from a JSONL file or the hub), limited and split into train and eval
records. Entry point: `pipeline/general_data.py`.
"""
from __future__ import annotations

import logging

from sling.config import resolve_path
from sling.data.importers import read_alpaca_jsonl
from sling.schema import Data

log = logging.getLogger("general_data")


def load_rows(data: Data) -> tuple[list[dict], int]:
    if data.general_source == "hub":
        from datasets import load_dataset

        ds = load_dataset(data.general_hub_id, split="train")
        rows = [{"instruction": r["instruction"], "input": r.get("input") or "", "output": r["output"]} for r in ds]
        return rows, 0
    path = resolve_path(data.general_path)
    if not path.is_file():
        raise FileNotFoundError(f"data.general_path: {path} does not exist; point it at an Alpaca-style JSON Lines file, "
                                "or set data.general_source=hub")
    rows, skipped = read_alpaca_jsonl(path)
    return rows, sum(skipped.values())

