"""Stage general_data: the general instruction set (Alpaca-style), the first adapter's training data.

    python -m pipeline.general_data
    python -m pipeline.general_data data.general_source=hub data.general_limit=16000   # needs the hub

Sources: `jsonl` (a local Alpaca file: the sample profile's own set, or the paper's Alpaca subset) or
`hub` (`datasets.load_dataset(data.general_hub_id)`, for users with the network). Split into train/eval
by a seeded shuffle.
"""
from __future__ import annotations

import logging
import random

from omegaconf import DictConfig

from pipeline.cli import run
from pipeline.config import load_config, resolve_path
from pipeline.formats import general_prompt, record
from pipeline.importers import read_alpaca_jsonl
from pipeline.io import provenance, write_json, write_jsonl
from pipeline.tracking import log_dataset, log_metrics, stage_run

log = logging.getLogger("general_data")

OUT_DIR = "data/datasets/general"


def load_rows(cfg: DictConfig) -> tuple[list[dict], int]:
    if cfg.data.general_source == "hub":
        from datasets import load_dataset

        ds = load_dataset(cfg.data.general_hub_id, split="train")
        rows = [{"instruction": r["instruction"], "input": r.get("input") or "", "output": r["output"]} for r in ds]
        return rows, 0
    rows, skipped = read_alpaca_jsonl(resolve_path(cfg.data.general_path))
    return rows, sum(skipped.values())


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("general_data", cfg):
        rows, skipped = load_rows(cfg)
        random.Random(cfg.seed).shuffle(rows)
        rows = rows[: cfg.data.general_limit]
        records = [record(general_prompt(cfg, r["instruction"], r["input"]), r["output"], source=cfg.data.general_source,
                          seed=cfg.seed) for r in rows]
        n_eval = max(1, round(len(records) * cfg.train.eval_fraction)) if len(records) > 1 else 0
        write_jsonl(resolve_path(f"{OUT_DIR}/train.jsonl"), records[n_eval:])
        write_jsonl(resolve_path(f"{OUT_DIR}/eval.jsonl"), records[:n_eval])
        metrics = {"rows": len(records), "train_rows": len(records) - n_eval, "eval_rows": n_eval, "skipped_malformed": skipped}
        write_json(resolve_path(f"{OUT_DIR}/provenance.json"), provenance(
            "general_data", {"source": cfg.data.general_source, "path": cfg.data.general_path, "limit": cfg.data.general_limit,
                             "seed": cfg.seed}, {"source": resolve_path(cfg.data.general_path)} if cfg.data.general_source == "jsonl" else {}))
        write_json(resolve_path("metrics/general_data.json"), metrics)
        log_metrics(metrics, prefix="general_data.")
        for side, context in (("train", "training"), ("eval", "evaluation")):
            log_dataset(resolve_path(f"{OUT_DIR}/{side}.jsonl"), f"general-{side}", context)
        log.info("%s", metrics)


if __name__ == "__main__":
    run(main)
