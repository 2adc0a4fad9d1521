"""Stages train_general and train_domain: (Q)LoRA adapters on the student, stacked as in the paper.

    python -m pipeline.train general                 # Alpaca-style set -> models/adapters/general
    python -m pipeline.train domain                  # synthetic domain set, on top of the merged general adapter
    python -m pipeline.train general lora.r=8 train.lr=2e-4 model.quantization=4bit
    python -m pipeline.train domain --seed 7         # one of train.extra_seeds -> models/adapters/seeds/7/domain
    python -m pipeline.train general train.launcher=accelerate train.num_processes=2   # under `accelerate launch`

Stacking: the domain adapter trains on the base model with the general adapter merged into its weights
(`sling.models.loading.load_student`), and every consumer loads a variant the same way. Loss is on the response
tokens by default (`train.loss_on=all`: the paper's whole-prompt loss). Mixed precision follows
`train.precision` (auto: bf16 autocast where the hardware has native bfloat16, sling.precision); batches are
padded dynamically and grouped by length, or packed padding-free (`train.packing`); eval loss is computed on at
most `train.max_eval_rows` rows. Checkpoints go to checkpoints/<stage>; a re-run with the same config and data resumes
from the last one. The adapter is saved in the standard PEFT layout with the resolved config beside it.

With `train.launcher=accelerate` the stage re-runs itself under `accelerate launch` on `train.num_processes`
processes (DDP, or FSDP on GPUs with `train.distributed=fsdp`): each batch is split over the processes, so the
global batch and the steps stay one process's, and rank 0 alone writes the adapter, metrics, curves and MLflow run.
"""
from __future__ import annotations

import contextlib
import os

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.errors import UserError
from sling.io import write_json
from sling.models.loading import adapter_dirs_for
from sling.models.training import (
    WORKER_ENV,
    launch,
    log,
    train,
    write_curves,
)
from sling.paths import (
    DATASET_DIRS,
    adapter_dir,
    checkpoint_dir,
    dataset_path,
    merged_dir,
    train_metrics_path,
)
from sling.tracking.runs import (
    log_artifact,
    log_dataset,
    log_headline,
    log_metrics,
    stage_run,
    step_logger,
)


def main(argv: list[str]) -> None:
    usage = f"usage: python -m pipeline.train {{{'|'.join(DATASET_DIRS)}}} [--seed N] [key=value ...]"
    if not argv or argv[0] not in DATASET_DIRS:
        raise UserError(usage)
    stage, rest = argv[0], argv[1:]
    seed = None
    if rest[:1] == ["--seed"]:
        if len(rest) < 2 or not rest[1].isdigit():
            raise UserError(usage)
        seed, rest = int(rest[1]), rest[2:]
    cfg = load_config(rest)
    if seed is not None:  # one of train.extra_seeds (stage train_<stage>_seed@N): the same run with another seed
        cfg.seed = seed
    name = f"train_{stage}" if seed is None else f"train_{stage}_seed{seed}"
    if cfg.train.launcher == "accelerate" and os.environ.get(WORKER_ENV) != "1":
        launch(cfg.train, argv, stage)
        return
    # Under accelerate only rank 0 opens the stage's MLflow run and writes; the other ranks train and return.
    primary = int(os.environ.get("RANK", "0")) == 0
    with stage_run(name, cfg) if primary else contextlib.nullcontext():
        res = train(cfg, stage, out_dir=resolve_path(adapter_dir(stage, seed)), adapter_dirs=adapter_dirs_for(seed),
                    checkpoint_dir=resolve_path(checkpoint_dir(stage, seed)), merged_dir=resolve_path(merged_dir(stage, seed)),
                    extra_callbacks=[step_logger(stage)] if primary else [])
        if not primary:
            return
        curve_files = write_curves(res.curves, stage, seed)
        write_json(resolve_path(train_metrics_path(stage, seed)), res.metrics)
        log_metrics({k: v for k, v in res.metrics.items() if v is not None}, prefix=f"{stage}.final.")
        log_headline({k: res.metrics[k] for k in ("train_loss", "eval_loss") if res.metrics[k] is not None},
                     prefix=f"{stage}.")
        log_artifact(res.adapter_dir, artifact_path=f"adapter_{stage}")  # with its sling_config.yaml
        if res.merged_dir:
            log_artifact(res.merged_dir, artifact_path=f"merged_{stage}")
        for side, context in (("train", "training"), ("eval", "evaluation")):
            if resolve_path(dataset_path(DATASET_DIRS[stage], side)).exists():
                log_dataset(resolve_path(dataset_path(DATASET_DIRS[stage], side)), f"{stage}-{side}", context)
        for path in curve_files:
            log_artifact(path, artifact_path=f"loss_{stage}")
        log.info("%s adapter -> %s: %s", stage, res.adapter_dir, res.metrics)


if __name__ == "__main__":
    run(main)

