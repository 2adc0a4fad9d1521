"""Stages train_general and train_domain: (Q)LoRA adapters on the student, stacked as in the paper.

    python -m pipeline.train general                 # Alpaca-style set -> models/adapters/general
    python -m pipeline.train domain                  # synthetic domain set, on top of the merged general adapter
    python -m pipeline.train general lora.r=8 train.lr=2e-4 model.quantization=4bit

Stacking: the domain adapter trains on the base model with the general adapter merged into its weights
(`pipeline.models.load_student`), and every consumer loads a variant the same way. Loss is on the response
tokens by default (`train.loss_on=all`: the paper's whole-prompt loss); batches are padded dynamically and
grouped by length. Checkpoints go to checkpoints/<stage>; a re-run with the same config and data resumes
from the last one. The adapter is saved in the standard PEFT layout with the resolved config beside it.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.config import load_config, resolve_path
from pipeline.io import atomic_dir, atomic_write_text, provenance, read_jsonl, sha256_text, sha256_tree, write_json
from pipeline.models import ADAPTER_DIRS, BASE_DIR, VARIANTS, load_base, load_tokenizer, merge_adapters
from pipeline.tracking import log_artifact, log_metrics, stage_run

log = logging.getLogger("train")

DATA = {"general": "data/datasets/general", "domain": "data/datasets/domain"}
IGNORE = -100


def tokenize(records: list[dict], tokenizer, max_length: int, loss_on: str) -> list[dict]:
    """input_ids and labels per record; prompt tokens are masked unless loss_on == 'all'."""
    out = []
    eos = tokenizer.eos_token or ""
    for r in records:
        prompt_ids = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(" " + r["response"] + eos, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + response_ids)[:max_length]
        labels = ids.copy() if loss_on == "all" else ([IGNORE] * len(prompt_ids) + response_ids)[:max_length]
        if all(label == IGNORE for label in labels):
            continue  # the prompt alone fills max_length: nothing to learn from this row
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out


class CountingCollator:
    """Pads each batch to its longest row (dynamic padding) and counts the real, non-padding tokens."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorForSeq2Seq

        self.inner = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE, pad_to_multiple_of=8)
        self.tokens = 0
        self.padded = 0

    def __call__(self, features):
        batch = self.inner(features)
        self.tokens += int(batch["attention_mask"].sum())
        self.padded += int(batch["attention_mask"].numel())
        return batch


def lora_config(cfg: DictConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.model.target_modules), bias="none", task_type="CAUSAL_LM")


def build_model(cfg: DictConfig, stage: str, base_dir: str | os.PathLike = BASE_DIR):
    """The base (4-bit when configured) with earlier adapters merged, wrapped with a fresh LoRA adapter."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    quantize = cfg.model.quantization == "4bit"
    model = load_base(cfg, base_dir, quantize=quantize)
    model = merge_adapters(model, VARIANTS[stage][:-1])
    if quantize:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.config.use_cache = False
    return get_peft_model(model, lora_config(cfg))


def run_key(cfg: DictConfig, stage: str) -> str:
    """What a checkpoint belongs to: resuming is only allowed with the same config, data and base."""
    parts = {"model": OmegaConf.to_container(cfg.model), "lora": OmegaConf.to_container(cfg.lora),
             "train": OmegaConf.to_container(cfg.train), "seed": cfg.seed,
             "data": sha256_tree(resolve_path(DATA[stage])),
             "adapters": [sha256_tree(resolve_path(ADAPTER_DIRS[a])) for a in VARIANTS[stage][:-1]]}
    return sha256_text(json.dumps(parts, sort_keys=True, default=str))


def loss_curve(log_history: list[dict]) -> list[dict]:
    """step, train_loss, eval_loss rows from the Trainer's log history (one row per logged step)."""
    rows: dict[int, dict] = {}
    for h in log_history:
        step = h.get("step")
        if step is None:
            continue
        row = rows.setdefault(step, {"step": step, "train_loss": "", "eval_loss": ""})
        if "loss" in h:
            row["train_loss"] = round(h["loss"], 5)
        if "eval_loss" in h:
            row["eval_loss"] = round(h["eval_loss"], 5)
    return [rows[s] for s in sorted(rows)]


def write_curve(path: Path, rows: list[dict]) -> None:
    lines = ["step,train_loss,eval_loss"] + [f"{r['step']},{r['train_loss']},{r['eval_loss']}" for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(cfg: DictConfig, stage: str, out_dir: str | os.PathLike | None = None,
          checkpoint_dir: str | os.PathLike | None = None, base_dir: str | os.PathLike = BASE_DIR,
          extra_callbacks: list | None = None) -> dict:
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    set_seed(cfg.seed)
    t = cfg.train
    tokenizer = load_tokenizer(base_dir)
    train_rows = tokenize(read_jsonl(resolve_path(f"{DATA[stage]}/train.jsonl")), tokenizer, t.max_length, t.loss_on)
    eval_rows = tokenize(read_jsonl(resolve_path(f"{DATA[stage]}/eval.jsonl")), tokenizer, t.max_length, t.loss_on)
    if not train_rows:
        raise ValueError(f"{DATA[stage]}/train.jsonl has no trainable rows (empty, or every prompt exceeds "
                         f"train.max_length={t.max_length})")
    model = build_model(cfg, stage, base_dir)
    trainable, total = model.get_nb_trainable_parameters()
    log.info("%s: %d train / %d eval rows, %.2fM trainable of %.1fM parameters", stage, len(train_rows),
             len(eval_rows), trainable / 1e6, total / 1e6)

    ckpt = Path(checkpoint_dir or resolve_path(f"checkpoints/{stage}"))
    key = run_key(cfg, stage)
    key_file = ckpt / "run_key"
    if ckpt.exists() and (not key_file.exists() or key_file.read_text() != key):
        shutil.rmtree(ckpt)  # checkpoints of another config or data: never resume from them
    ckpt.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    resume = any(p.name.startswith("checkpoint-") for p in ckpt.iterdir())

    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(ckpt), max_steps=t[f"{stage}_max_steps"], learning_rate=t.lr, lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_steps, per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, eval_strategy="steps" if eval_rows else "no", eval_steps=t.eval_steps,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=2, logging_steps=t.logging_steps,
        seed=cfg.seed, data_seed=cfg.seed, report_to="none", use_cpu=not cuda, train_sampling_strategy="group_by_length",
        bf16=cuda and cfg.model.dtype == "bfloat16", fp16=cuda and cfg.model.dtype == "float16",
        dataloader_num_workers=0, disable_tqdm=False, remove_unused_columns=False)
    collator = CountingCollator(tokenizer)

    class MLflowSteps(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            log_metrics({k: v for k, v in (logs or {}).items() if k in ("loss", "eval_loss", "learning_rate", "grad_norm")},
                        prefix=f"{stage}.", step=state.global_step)

    class CountingTrainer(Trainer):
        """Evaluation batches use a plain collator, so the token count covers training alone."""

        def get_eval_dataloader(self, eval_dataset=None):
            counting, self.data_collator = self.data_collator, collator.inner
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = counting

    trainer = CountingTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                      eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, data_collator=collator,
                      callbacks=[MLflowSteps(), *(extra_callbacks or [])])
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    wall = time.perf_counter() - started
    final_eval = trainer.evaluate()["eval_loss"] if eval_rows else None

    out = Path(out_dir or resolve_path(ADAPTER_DIRS[stage]))
    curve = loss_curve(trainer.state.log_history)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        atomic_write_text(tmp / "sling_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_json(tmp / "sling_provenance.json", provenance(
            f"train_{stage}", {"lora": OmegaConf.to_container(cfg.lora), "train": OmegaConf.to_container(t),
                               "model": cfg.model.name, "stacked_on": VARIANTS[stage][:-1], "seed": cfg.seed},
            {"data": resolve_path(DATA[stage]), "base": resolve_path(base_dir)}))
    if t.merge_export:
        with atomic_dir(resolve_path(f"models/merged/{stage}")) as tmp:
            model.merge_and_unload().save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    metrics = {"train_loss": round(result.training_loss, 5), "eval_loss": round(final_eval, 5) if final_eval is not None else None,
               "steps": trainer.state.global_step, "resumed": resume,
               "tokens_per_s": round(collator.tokens / wall, 2) if wall else 0.0,
               "padding_share": round(1 - collator.tokens / collator.padded, 4) if collator.padded else 0.0,
               "peak_memory_mb": round(peak_memory_mb(), 1), "trainable_params": trainable, "total_params": total,
               "wall_time_s": round(wall, 2), "train_rows": len(train_rows), "eval_rows": len(eval_rows)}
    return {"metrics": metrics, "curve": curve, "adapter_dir": str(out)}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in DATA:
        raise SystemExit(f"usage: python -m pipeline.train {{{'|'.join(DATA)}}} [key=value ...]")
    stage, overrides = argv[0], argv[1:]
    cfg = load_config(overrides)
    with stage_run(f"train_{stage}", cfg):
        res = train(cfg, stage)
        write_curve(resolve_path(f"plots/train_{stage}.csv"), res["curve"])
        write_json(resolve_path(f"metrics/train_{stage}.json"), res["metrics"])
        log_metrics({k: v for k, v in res["metrics"].items() if v is not None}, prefix=f"{stage}.final.")
        log_artifact(res["adapter_dir"], artifact_path=f"adapter_{stage}")
        log_artifact(resolve_path(f"plots/train_{stage}.csv"))
        log.info("%s adapter -> %s: %s", stage, res["adapter_dir"], res["metrics"])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    main(sys.argv[1:])
