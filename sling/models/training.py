"""LoRA training of one adapter (general or domain): tokenizing records with the loss on the response or on all
tokens, padding and packing collators, the model with its adapter stacked on the ones below it, the Trainer's
arguments and schedule, checkpoints and resume, loss curves, and the re-launch under `accelerate launch`
(`train.launcher`). Entry point: `pipeline/train.py`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sling.config import resolve_path
from sling.errors import InputError
from sling.io import (
    atomic_dir,
    atomic_write_text,
    provenance,
    read_json,
    read_jsonl,
    sha256_text,
    sha256_tree,
    write_json,
)
from sling.models.loading import (
    ADAPTER_DIRS,
    VARIANTS,
    load_base,
    load_student,
    load_tokenizer,
    merge_adapters,
)
from sling.paths import (
    BASE_DIR,
    DATASET_DIRS,
    MODEL_PROVENANCE,
    TRAINING_CONFIG,
    dataset_path,
    loss_curve_path,
)
from sling.paths import checkpoint_dir as default_checkpoint_dir
from sling.paths import merged_dir as default_merged_dir
from sling.precision import train_precision
from sling.schema import Lora, Model, Train

log = logging.getLogger("train")


IGNORE = -100


WORKER_ENV = "SLING_TRAIN_WORKER"  # set in the processes `accelerate launch` starts for the stage (train.launcher)


def tokenize(records: list[dict], tokenizer, max_length: int, loss_on: str, source: str = "records") -> list[dict]:
    """input_ids and labels per record; prompt tokens are masked unless loss_on == 'all'.

    Rows whose prompt alone fills `max_length` have nothing to learn from: they are dropped and counted in a warning.
    """
    out, too_long, cut = [], 0, 0
    eos = tokenizer.eos_token or ""
    for i, r in enumerate(records, 1):
        if not isinstance(r.get("prompt"), str) or not isinstance(r.get("response"), str):
            raise InputError(f"{source}: row {i} lacks a string 'prompt' and 'response'; rebuild it with the "
                             f"general_data / build_dataset stage")
        prompt_ids = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(" " + r["response"] + eos, add_special_tokens=False)["input_ids"]
        cut += len(prompt_ids) + len(response_ids) > max_length
        ids = (prompt_ids + response_ids)[:max_length]
        labels = ids.copy() if loss_on == "all" else ([IGNORE] * len(prompt_ids) + response_ids)[:max_length]
        if all(label == IGNORE for label in labels):
            too_long += 1
            continue
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    if too_long:
        log.warning("%s: skipped %d of %d rows whose prompt fills train.max_length=%d", source, too_long,
                    len(records), max_length)
    if cut - too_long:
        log.warning("%s: %d of %d rows are cut at train.max_length=%d (the end of their response is not trained "
                    "on; raise train.max_length to keep it)", source, cut - too_long, len(records), max_length)
    return out


def padding_collator(tokenizer):
    """Each batch padded to its longest row, rounded up to a multiple of 8 (dynamic padding)."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE, pad_to_multiple_of=8)


def packing_collator():
    """Each batch's rows concatenated into one padding-free sequence; position ids restart at every row, which is
    how the attention keeps the rows apart (transformers' DataCollatorWithFlattening: the first label of each row
    becomes -100, so no row is trained to predict the next one's first token)."""
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)


class CountingCollator:
    """Wraps a collator (dynamic padding by default) and counts the real, non-padding tokens it batches."""

    def __init__(self, tokenizer, inner=None):
        self.inner = inner or padding_collator(tokenizer)
        self.tokens = 0
        self.padded = 0

    def __call__(self, features):
        batch = self.inner(features)
        mask = batch.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        self.padded += int(batch["input_ids"].numel())
        return batch


def packing_keeps_rows_apart(model, tokenizer) -> bool:
    """Whether this model, with its attention implementation, gives each row of a packed sequence the same logits
    as that row alone: checked on two short rows before training, so packing is used only where it is correct."""
    import torch

    rows = [tokenizer("Packing check: the first row.", add_special_tokens=False)["input_ids"],
            tokenizer("A second, longer row that must not see the first one.", add_special_tokens=False)["input_ids"]]
    batch = packing_collator()([{"input_ids": r} for r in rows])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            # use_cache=False, as in training: with a cache transformers does not look for packed rows
            packed = model(input_ids=batch["input_ids"].to(device), position_ids=batch["position_ids"].to(device),
                           use_cache=False).logits[0]
            alone = torch.cat([model(input_ids=torch.tensor([r], device=device), use_cache=False).logits[0]
                               for r in rows])
    except Exception as e:  # an architecture that rejects position_ids or packed masks: pad instead
        log.warning("packing check failed (%s: %s): padding instead", type(e).__name__, e)
        return False
    finally:
        model.train(was_training)
    return bool(torch.allclose(packed.float(), alone.float(), atol=1e-3, rtol=1e-3))


def resolve_packing(setting: str, model, tokenizer) -> bool:
    """`train.packing` resolved for this model (see its doc in sling/schema.py)."""
    if setting == "off":
        return False
    attention = getattr(model.config, "_attn_implementation", None) or "eager"
    if setting == "auto" and not attention.startswith("flash_attention"):
        return False
    if packing_keeps_rows_apart(model, tokenizer):
        return True
    log.warning("train.packing=%s: %s attention of this model mixes the rows of a packed sequence; each batch is "
                "padded instead", setting, attention)
    return False


def eval_subset(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """At most `limit` eval rows, a seeded sample kept in file order (the same rows at every evaluation)."""
    if limit is None or len(rows) <= limit:
        return rows
    import random

    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    log.info("evaluating on %d of %d eval rows (train.max_eval_rows)", limit, len(rows))
    return [rows[i] for i in keep]


def lora_config(lora: Lora, model: Model):
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(model.target_modules), bias="none", task_type="CAUSAL_LM")


def build_model(model_cfg: Model, lora: Lora, stage: str, base_dir: str | os.PathLike = BASE_DIR,
                adapter_dirs: dict[str, str] | None = None):
    """The base (4-bit when configured) with earlier adapters merged, wrapped with a fresh LoRA adapter."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    quantize = model_cfg.quantization == "4bit"
    model = load_base(model_cfg, base_dir, quantize=quantize)
    model = merge_adapters(model, VARIANTS[stage][:-1], adapter_dirs)
    if quantize:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.config.use_cache = False
    return get_peft_model(model, lora_config(lora, model_cfg))


TRAINING_GROUPS = ["seed", "model", "lora", "train"]  # what the train stages read of the config


def training_settings(cfg: DictConfig) -> DictConfig:
    """The config groups an adapter is trained with (TRAINING_GROUPS), alone: what its checkpoints belong to
    (`run_key`) and what is saved beside it (`training_config_yaml`)."""
    return OmegaConf.masked_copy(cfg, TRAINING_GROUPS)


def run_key(settings: DictConfig, stage: str, data_dir: Path, adapter_dirs: dict[str, str]) -> str:
    """What a checkpoint belongs to: resuming is only allowed with the same settings (`training_settings`), data and
    earlier adapters."""
    parts = {"model": OmegaConf.to_container(settings.model), "lora": OmegaConf.to_container(settings.lora),
             "train": OmegaConf.to_container(settings.train), "seed": settings.seed,
             "data": sha256_tree(data_dir),
             "adapters": [sha256_tree(resolve_path(adapter_dirs[a])) for a in VARIANTS[stage][:-1]]}
    return sha256_text(json.dumps(parts, sort_keys=True, default=str))


def training_config_yaml(settings: DictConfig) -> str:
    """The settings an adapter was trained with (`training_settings`: the seed, model, LoRA and train groups, the ones
    the train stages read), saved beside it as sling_config.yaml. Not the whole config: a key added to another group
    would change the adapter directory's bytes (and its DVC hash) without changing the training."""
    return OmegaConf.to_yaml(settings, resolve=True)


LOSS_SERIES = {"train": "loss", "eval": "eval_loss"}  # a loss curve's name -> the Trainer's log key for it


def loss_curves(log_history: list[dict]) -> dict[str, list[dict]]:
    """Each loss series (train, eval) as step,loss rows from the Trainer's log history, at the steps where it was
    logged: eval loss every train.eval_steps, train loss every train.logging_steps."""
    curves = {}
    for name, key in LOSS_SERIES.items():
        points = {h["step"]: round(h[key], 5) for h in log_history if key in h and h.get("step") is not None}
        curves[name] = [{"step": s, "loss": points[s]} for s in sorted(points)]
    return curves


def write_curves(curves: dict[str, list[dict]], stage: str, seed: int | None = None) -> list[Path]:
    """The stage's loss curves, one CSV per series (`sling.paths.loss_curve_path`); returns their paths."""
    paths = []
    for name, rows in curves.items():
        path = resolve_path(loss_curve_path(stage, name, seed))
        atomic_write_text(path, "step,loss\n" + "".join(f"{r['step']},{r['loss']}\n" for r in rows))
        paths.append(path)
    return paths


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_split(data_dir: Path, split: str, stage: str) -> list[dict]:
    path = Path(dataset_path(data_dir, split))
    if not path.exists():
        producer = "general_data" if stage == "general" else "build_dataset"
        raise FileNotFoundError(f"{path} is missing: run `dvc repro {producer}` (or pass data_dir= a directory "
                                f"with train.jsonl and eval.jsonl)")
    return read_jsonl(path)


def cosine_cycles(max_steps: int, warmup: int, horizon: int | None) -> float:
    """transformers' cosine `num_cycles` that makes a run of `max_steps` follow the first part of a `horizon`-step decay."""
    if horizon is None or horizon <= warmup:
        return 0.5
    return 0.5 * max(max_steps - warmup, 1) / (horizon - warmup)


def training_args(t: Train, seed: int, output_dir: str | os.PathLike, max_steps: int, has_eval: bool,
                  schedule_steps: int | None = None, **overrides):
    """TrainingArguments from the train section (shared by the stage and bench/bench_training.py)."""
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    precision = train_precision(t.precision)
    if t.launcher == "accelerate":
        # Each batch of train.batch_size rows is split over the processes (accelerate's split_batches): the same
        # sampler, the same global batches and the same steps as one process, whatever the process count.
        overrides.setdefault("accelerator_config", {"split_batches": True})
        if t.distributed == "fsdp":
            # FSDP2: each decoder layer sharded over the processes; full weights gathered for saving
            overrides.setdefault("fsdp", True)
            overrides.setdefault("fsdp_config", {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                                 "state_dict_type": "FULL_STATE_DICT"})
    if schedule_steps is not None:
        overrides.setdefault("lr_scheduler_kwargs", {"num_cycles": cosine_cycles(max_steps, t.warmup_steps, schedule_steps)})
    kwargs = dict(
        output_dir=str(output_dir), max_steps=max_steps, learning_rate=t.lr, lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_steps, per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, eval_strategy="steps" if has_eval else "no", eval_steps=t.eval_steps,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=2, logging_steps=t.logging_steps,
        seed=seed, data_seed=seed, report_to="none", use_cpu=not cuda, train_sampling_strategy="group_by_length",
        bf16=precision == "bf16", fp16=precision == "fp16",
        dataloader_num_workers=0, disable_tqdm=False, remove_unused_columns=False)
    return TrainingArguments(**(kwargs | overrides))


@dataclass
class TrainingResult:
    """What training one adapter gives its stage: the run's figures (None on a process other than rank 0, which
    writes nothing), its loss curves, where the adapter (and the merged model, with train.merge_export) was saved."""

    metrics: dict | None
    curves: dict[str, list[dict]]
    adapter_dir: str
    merged_dir: str | None = None


def train(cfg: DictConfig, stage: str, out_dir: str | os.PathLike | None = None,
          checkpoint_dir: str | os.PathLike | None = None, base_dir: str | os.PathLike = BASE_DIR,
          extra_callbacks: list | None = None, data_dir: str | os.PathLike | None = None,
          adapter_dirs: dict[str, str] | None = None, merged_dir: str | os.PathLike | None = None) -> TrainingResult:
    """Train the `stage` adapter. Reads the config's training groups alone (`training_settings`: seed, model, lora,
    train).

    Defaults are the pipeline's paths (data/datasets/<stage>, models/adapters/<stage>, checkpoints/<stage>,
    models/merged/<stage>); tests and benchmarks pass their own.
    """
    from datasets import Dataset
    from transformers import Trainer, set_seed

    settings = training_settings(cfg)
    set_seed(cfg.seed)
    t = cfg.train
    data = Path(data_dir) if data_dir else resolve_path(DATASET_DIRS[stage])
    adapters = {**ADAPTER_DIRS, **(adapter_dirs or {})}
    tokenizer = load_tokenizer(base_dir)
    loss_on = t.get(f"{stage}_loss_on") or t.loss_on
    train_rows = tokenize(read_split(data, "train", stage), tokenizer, t.max_length, loss_on, dataset_path(data, "train"))
    eval_rows = tokenize(read_split(data, "eval", stage), tokenizer, t.max_length, loss_on, dataset_path(data, "eval"))
    if not train_rows:
        raise InputError(f"{dataset_path(data, 'train')} has no trainable rows (empty, or every prompt exceeds "
                         f"train.max_length={t.max_length})")
    if not eval_rows:
        log.warning("%s has no rows: no eval loss will be reported", dataset_path(data, "eval"))
    all_eval_rows = len(eval_rows)
    eval_rows = eval_subset(eval_rows, t.max_eval_rows, cfg.seed)
    model = build_model(cfg.model, cfg.lora, stage, base_dir, adapters)
    packing = resolve_packing(t.packing, model, tokenizer)
    log.info("%s: precision %s (train.precision=%s), %s", stage, train_precision(t.precision), t.precision,
             "packed batches" if packing else "batches padded to their longest row")
    trainable, total = model.get_nb_trainable_parameters()
    log.info("%s: %d train / %d eval rows, %.2fM trainable of %.1fM parameters", stage, len(train_rows),
             len(eval_rows), trainable / 1e6, total / 1e6)

    ckpt = Path(checkpoint_dir or resolve_path(default_checkpoint_dir(stage)))
    epochs = t.get(f"{stage}_epochs")
    max_steps = math.ceil(epochs * len(train_rows) / (t.batch_size * t.grad_accum)) if epochs else t[f"{stage}_max_steps"]
    if epochs:
        log.info("%s: %g epoch(s) of %d rows at %d rows a step: %d steps", stage, epochs, len(train_rows),
                 t.batch_size * t.grad_accum, max_steps)
    args = training_args(t, cfg.seed, ckpt, max_steps, bool(eval_rows), schedule_steps=t[f"{stage}_schedule_steps"],
                         **({"train_sampling_strategy": "random"} if packing else {}))
    # The arguments set up the processes (one, or those accelerate launched): rank 0 alone clears checkpoints of
    # another run, then every rank reads the same last checkpoint.
    from accelerate import PartialState

    state = PartialState()
    main_process = state.is_main_process
    key = run_key(settings, stage, data, adapters)
    key_file = ckpt / "run_key"
    if main_process:
        if ckpt.exists() and (not key_file.exists() or key_file.read_text() != key):
            log.info("%s holds checkpoints of another config or data: starting afresh", ckpt)
            shutil.rmtree(ckpt)
        ckpt.mkdir(parents=True, exist_ok=True)
        atomic_write_text(key_file, key)
    state.wait_for_everyone()
    last = max((int(p.name.split("-")[1]) for p in ckpt.glob("checkpoint-*") if p.name.split("-")[1].isdigit()),
               default=0)
    if last:
        log.info("resuming %s from %s/checkpoint-%d", stage, ckpt, last)
    if state.num_processes > 1:
        log.info("%s: %d processes (%s, %s), %d rows per process of each %d-row batch", stage, state.num_processes,
                 t.distributed, state.backend, t.batch_size // state.num_processes, t.batch_size)
    collator = CountingCollator(tokenizer, packing_collator() if packing else None)

    class CountingTrainer(Trainer):
        """Evaluation batches are padded by a plain collator, so the token count covers training alone."""

        def get_eval_dataloader(self, eval_dataset=None):
            counting, self.data_collator = self.data_collator, padding_collator(tokenizer)
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = counting

    trainer = CountingTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                              eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, data_collator=collator,
                              callbacks=list(extra_callbacks or []))
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if last else None)
    wall = time.perf_counter() - started
    final_eval = trainer.evaluate()["eval_loss"] if eval_rows else None
    tokens, padded = collator.tokens, collator.padded
    if state.num_processes > 1:  # each process counted its share of every batch
        log.info("%s: trained as %s over %d processes", stage, type(trainer.model_wrapped).__name__,
                 state.num_processes)
        if t.distributed == "fsdp" and not trainer.is_fsdp_enabled:
            log.warning("train.distributed=fsdp: accelerate shards with FSDP on GPUs only; these %s processes "
                        "trained with DDP (a full copy of the model each)", state.backend)
        import torch

        counts = trainer.accelerator.reduce(torch.tensor([tokens, padded], dtype=torch.float64,
                                                         device=trainer.accelerator.device), reduction="sum")
        tokens, padded = int(counts[0]), int(counts[1])
    # Under FSDP every rank holds a shard: the full weights are gathered (by all ranks) for rank 0 to save.
    full_state = trainer.accelerator.get_state_dict(trainer.model) if trainer.is_fsdp_enabled else None

    out = Path(out_dir or resolve_path(ADAPTER_DIRS[stage]))
    curves = loss_curves(trainer.state.log_history)
    if not main_process:  # rank 0 writes the adapter and the run's figures
        state.wait_for_everyone()
        return TrainingResult(None, curves, str(out))
    with atomic_dir(out) as tmp:
        # Record the base as configured (relative to the work root), not this machine's absolute path, so the
        # adapter's bytes do not depend on where the repository is checked out.
        for peft_cfg in model.peft_config.values():
            peft_cfg.base_model_name_or_path = str(base_dir)
        model.save_pretrained(tmp, **({"state_dict": full_state} if full_state is not None else {}))
        # PEFT writes target_modules from a set (its order follows the process's hash seed) and a blank model
        # card naming the absolute base path: sort the one, drop the other, so equal training gives equal bytes.
        adapter_cfg = read_json(tmp / "adapter_config.json")
        if isinstance(adapter_cfg.get("target_modules"), list):
            adapter_cfg["target_modules"] = sorted(adapter_cfg["target_modules"])
        write_json(tmp / "adapter_config.json", adapter_cfg)
        (tmp / "README.md").unlink(missing_ok=True)
        atomic_write_text(tmp / TRAINING_CONFIG, training_config_yaml(settings))
        write_json(tmp / MODEL_PROVENANCE, provenance(
            f"train_{stage}", {"lora": OmegaConf.to_container(cfg.lora), "train": OmegaConf.to_container(t),
                               "model": cfg.model.name, "stacked_on": VARIANTS[stage][:-1], "seed": cfg.seed},
            {"data": data, "base": resolve_path(base_dir),
             **{f"adapter_{a}": resolve_path(adapters[a]) for a in VARIANTS[stage][:-1]}}))
    merged = None
    if t.merge_export:
        # From the full-precision base, not the training model: a 4-bit base cannot be merged without rounding.
        merged = Path(merged_dir or resolve_path(default_merged_dir(stage)))
        full = load_student(cfg.model, stage, {**adapters, stage: str(out)}, base_dir=base_dir)
        with atomic_dir(merged) as tmp:
            full.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            atomic_write_text(tmp / TRAINING_CONFIG, training_config_yaml(settings))
        del full
    state.wait_for_everyone()
    shutil.rmtree(ckpt, ignore_errors=True)  # the adapter is saved: a finished run leaves nothing to resume
    train_losses = [r["loss"] for r in curves["train"]]
    metrics = {"train_loss": train_losses[-1] if train_losses else None,
               "train_loss_first": train_losses[0] if train_losses else None,
               "eval_loss": round(final_eval, 5) if final_eval is not None else None,
               "steps": trainer.state.global_step, "max_steps": max_steps, "resumed": bool(last),
               "resumed_from_step": last,
               "tokens_per_s": round(tokens / wall, 2) if wall else 0.0,
               "padding_share": round(1 - tokens / padded, 4) if padded else 0.0,
               "peak_memory_mb": round(peak_memory_mb(), 1), "trainable_params": trainable, "total_params": total,
               "wall_time_s": round(wall, 2), "train_rows": len(train_rows), "eval_rows": len(eval_rows),
               "eval_rows_available": all_eval_rows, "precision": train_precision(t.precision), "packing": packing,
               "loss_on": loss_on, "epochs": round(trainer.state.global_step * t.batch_size * t.grad_accum
                                                   / len(train_rows), 3)}
    if state.num_processes > 1:  # recorded only where it ran on several, so one process's metrics stay as they were
        metrics |= {"processes": state.num_processes, "distributed": "fsdp" if trainer.is_fsdp_enabled else "ddp",
                    "backend": state.backend}
    return TrainingResult(metrics, curves, str(out), str(merged) if merged else None)


def launch_command(t: Train, argv: list[str]) -> list[str]:
    """`accelerate launch` of this stage with the same arguments, on train.num_processes processes: data parallel
    (torch DDP; NCCL on GPUs, gloo on a CPU) or FSDP (train.distributed), on this machine unless
    train.accelerate_config names a config of several."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(t.num_processes)]
    if t.accelerate_config:
        cmd += ["--config_file", str(resolve_path(t.accelerate_config))]
    else:
        # Precision stays train.precision's (the Trainer's autocast): accelerate's own mixed precision is off.
        cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        if t.num_processes > 1:
            cmd += ["--multi_gpu"]  # accelerate's multi-process launcher; on a machine without GPUs, gloo on CPUs
    return cmd + ["-m", "pipeline.train", *argv]


def launch(t: Train, argv: list[str], stage: str) -> None:
    """Run the stage again under `accelerate launch`; the launched processes train and rank 0 writes everything."""
    cmd = launch_command(t, argv)
    log.info("%s: launching %d process(es) with accelerate: %s", stage, t.num_processes, " ".join(cmd[1:]))
    env = {**os.environ, WORKER_ENV: "1"}
    code = subprocess.run(cmd, env=env).returncode
    if code:
        raise SystemExit(f"train {stage}: the processes launched with accelerate (train.launcher=accelerate, "
                         f"train.num_processes={t.num_processes}) failed with exit code {code}; their log is "
                         "above. A re-run resumes from the last checkpoint")

