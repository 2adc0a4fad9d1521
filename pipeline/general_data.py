"""Stage general_data: the general instruction set (Alpaca-style), the first adapter's training data.

    python -m pipeline.general_data
    python -m pipeline.general_data data.general_source=hub data.general_limit=16000   # needs the hub

Sources: `jsonl` (a local Alpaca file: the sample profile's own set, or the paper's Alpaca subset) or
`hub` (`datasets.load_dataset(data.general_hub_id)`, for users with the network). Split into train/eval
by a seeded shuffle.
"""
from __future__ import annotations

import random

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.data.formats import general_prompt, record
from sling.data.general import load_rows, log
from sling.io import provenance, write_json, write_jsonl
from sling.paths import (
    GENERAL_DATA_METRICS,
    GENERAL_DIR,
    GENERAL_PROVENANCE,
    dataset_path,
)
from sling.tracking.runs import log_dataset, log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("general_data", cfg):
        rows, skipped = load_rows(cfg.data)
        random.Random(cfg.seed).shuffle(rows)
        rows = rows[: cfg.data.general_limit]
        records = [record(general_prompt(cfg.dataset, r["instruction"], r["input"]), r["output"],
                          source=cfg.data.general_source, seed=cfg.seed) for r in rows]
        n_eval = max(1, round(len(records) * cfg.train.eval_fraction)) if len(records) > 1 else 0
        write_jsonl(resolve_path(dataset_path(GENERAL_DIR, "train")), records[n_eval:])
        write_jsonl(resolve_path(dataset_path(GENERAL_DIR, "eval")), records[:n_eval])
        metrics = {"rows": len(records), "train_rows": len(records) - n_eval, "eval_rows": n_eval, "skipped_malformed": skipped}
        write_json(resolve_path(GENERAL_PROVENANCE), provenance(
            "general_data", {"source": cfg.data.general_source, "path": cfg.data.general_path, "limit": cfg.data.general_limit,
                             "seed": cfg.seed}, {"source": resolve_path(cfg.data.general_path)} if cfg.data.general_source == "jsonl" else {}))
        write_json(resolve_path(GENERAL_DATA_METRICS), metrics)
        log_metrics(metrics, prefix="general_data.")
        for side, context in (("train", "training"), ("eval", "evaluation")):
            log_dataset(resolve_path(dataset_path(GENERAL_DIR, side)), f"general-{side}", context)
        log.info("%s", metrics)


if __name__ == "__main__":
    run(main)

