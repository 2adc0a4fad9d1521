"""Training throughput: our collation against the paper's pad-to-500 tokenisation, same model and rows, one run.

    .venv/bin/python bench/bench_training.py                        # SmolLM2-135M, 32 SAI rows, LoRA, batch 4
    .venv/bin/python bench/bench_training.py --rows 64 --base models/base
    .venv/bin/python bench/bench_training.py --model tiny --rows 16 # a random 2-layer model: checks the wiring fast

Both sides train the same fresh LoRA adapter (the stage's `build_model`, the paper's recipe: loss on the whole
prompt, max length 500) for one epoch over the same rows with the stage's TrainingArguments:
- ours: `pipeline.train.tokenize` + `CountingCollator` (pad each batch to its longest row, rounded to 8) with
  length-grouped sampling, as the train stages run;
- paper: every row tokenised with `padding="max_length", max_length=500, truncation=True` (the paper's notebooks),
  random sampling.
Useful tokens are the non-padding ones (attention mask), counted by the same collator wrapper on both sides; the
rate is useful tokens per second spent in training steps (Trainer set-up excluded on both sides). The target is ours/paper >= 2.
Data: the paper's SAI rows (`../shared/seed/SAI_dataset/dataset_train.json`) when present, else the sample
general set; `--data` picks another JSON Lines file with `text` (split at `### Response:`) or `prompt`/`response`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipeline.config import compose  # noqa: E402
from pipeline.io import read_jsonl  # noqa: E402
from pipeline.train import IGNORE, CountingCollator, build_model, tokenize, training_args  # noqa: E402

SAI = ROOT.parent / "shared" / "seed" / "SAI_dataset" / "dataset_train.json"
SAMPLE = ROOT / "corpus" / "sample" / "general.jsonl"
RESPONSE = re.compile(r"(?P<prompt>.*?###\s*Response:)\s*(?P<response>.*)\Z", re.S)
log = logging.getLogger("bench_training")


def load_records(path: Path, n: int, cfg) -> list[dict]:
    """prompt/response rows: the paper's `text` split at its response marker, or Alpaca rows formatted as the stage does."""
    from pipeline.formats import general_prompt

    rows, skipped = [], 0
    for r in read_jsonl(path):
        if "text" in r and (m := RESPONSE.match(r["text"])):
            rows.append({"prompt": m["prompt"], "response": m["response"]})
        elif "prompt" in r and "response" in r:
            rows.append({"prompt": r["prompt"], "response": r["response"]})
        elif "instruction" in r and "output" in r:
            rows.append({"prompt": general_prompt(cfg, r["instruction"], r.get("input", "")), "response": r["output"]})
        else:
            skipped += 1
        if len(rows) == n:
            break
    if skipped:
        log.warning("%s: skipped %d rows with neither text+### Response: nor prompt/response", path, skipped)
    if not rows:
        raise SystemExit(f"{path}: no usable rows (need `text` with '### Response:', prompt/response, or Alpaca rows)")
    if len(rows) < n:
        log.warning("%s holds only %d usable rows (asked for %d)", path, len(rows), n)
    return rows


def paper_rows(records: list[dict], tokenizer, max_length: int) -> list[dict]:
    """The paper's tokenisation: the whole text, truncated and padded to max_length, loss on every real token."""
    out = []
    for r in records:
        enc = tokenizer(r["prompt"] + " " + r["response"] + (tokenizer.eos_token or ""), truncation=True,
                        max_length=max_length, padding="max_length", add_special_tokens=False)
        labels = [t if m else IGNORE for t, m in zip(enc["input_ids"], enc["attention_mask"])]
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    return out


def make_base(kind: str, base: str | None, workdir: Path) -> Path:
    if base:
        return Path(base).resolve()
    path = workdir / "base"
    if kind == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from test_train import tiny_model  # a random 2-layer Llama; its tokenizer knows only the test's words

        return tiny_model(path)
    from pipeline.snapshot_model import load_source

    model, tokenizer = load_source(compose([]).model)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def step_timer():
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        """Seconds spent inside optimizer steps (forward, backward, update): Trainer set-up is not training."""

        seconds = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds += time.perf_counter() - self.started

    return Timer()


def measure(cfg, base: Path, rows: list[dict], collator: CountingCollator, sampling: str, workdir: Path) -> dict:
    from datasets import Dataset
    from transformers import Trainer, set_seed

    set_seed(cfg.seed)
    model = build_model(cfg, "general", base)
    steps = math.ceil(len(rows) / (cfg.train.batch_size * cfg.train.grad_accum))
    args = training_args(cfg, workdir / f"ckpt_{sampling}", steps, False, save_strategy="no", logging_steps=steps,
                         train_sampling_strategy=sampling)
    timer = step_timer()
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows), data_collator=collator,
                      callbacks=[timer])
    result = trainer.train()
    wall = timer.seconds
    return {"steps": steps, "wall_s": round(wall, 2), "useful_tokens": collator.tokens, "padded_tokens": collator.padded,
            "useful_tokens_per_s": round(collator.tokens / wall, 1), "padding_share": round(1 - collator.tokens / collator.padded, 3),
            "train_loss": round(result.training_loss, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2",
                    help="smollm2: snapshot the packaged SmolLM2-135M into a tmp dir (~25 s); tiny: random 2-layer model")
    ap.add_argument("--base", help="an existing model directory (e.g. models/base) instead of a fresh snapshot")
    ap.add_argument("--data", type=Path, help=f"JSON Lines rows (default: {SAI} if present, else {SAMPLE})")
    ap.add_argument("--rows", type=int, default=32, help="rows trained on, one epoch per side (default 32)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=500, help="the paper's max length (default 500)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per side, alternated; the best counts")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")

    overrides = ["train.loss_on=all", f"train.max_length={a.max_length}", f"train.batch_size={a.batch_size}",
                 "train.grad_accum=1", "train.warmup_steps=0"]
    cfg = compose(overrides)
    data = a.data or (SAI if SAI.exists() else SAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        base = make_base(a.model, a.base, workdir)
        from pipeline.models import load_tokenizer

        tokenizer = load_tokenizer(base)
        records = load_records(data, a.rows, cfg)
        ours_rows = tokenize(records, tokenizer, a.max_length, "all", str(data))
        paper_tokenised = paper_rows(records, tokenizer, a.max_length)
        # One untimed one-row step first: the first step in a process pays one-off set-up (lazy imports, kernels).
        measure(cfg, base, ours_rows[:1], CountingCollator(tokenizer), "group_by_length", workdir)
        runs = {"ours": [], "paper": []}
        for _ in range(a.repeats):  # alternate the sides so that load on a shared machine hits both alike
            runs["ours"].append(measure(cfg, base, ours_rows, CountingCollator(tokenizer), "group_by_length", workdir))
            runs["paper"].append(measure(cfg, base, paper_tokenised, CountingCollator(tokenizer, inner=_default_collator()),
                                         "random", workdir))
    # Best of the repeats per side: interference from other processes only ever slows a run down.
    ours, paper = (max(runs[k], key=lambda r: r["useful_tokens_per_s"]) for k in ("ours", "paper"))
    ratio = ours["useful_tokens_per_s"] / paper["useful_tokens_per_s"]
    report = {"model": a.model if not a.base else str(a.base), "data": str(data), "rows": len(records),
              "batch_size": a.batch_size, "max_length": a.max_length, "threads": _threads(),
              "repeats": a.repeats, "paper_pad_to_max": paper, "ours_dynamic": ours, "speedup": round(ratio, 2),
              "all_runs": runs}
    print(f"data: {data} ({len(records)} rows), model: {report['model']}, batch {a.batch_size}, max_length {a.max_length}")
    for name, r in (("paper (pad to max_length)", paper), ("ours (dynamic padding)", ours)):
        print(f"{name:28s} {r['useful_tokens_per_s']:9.1f} useful tokens/s  ({r['useful_tokens']} useful of "
              f"{r['padded_tokens']} tokens, padding {r['padding_share']:.1%}, {r['steps']} steps, {r['wall_s']} s)")
    if a.repeats > 1:
        print("all runs, useful tokens/s: " + "; ".join(f"{k} " + ", ".join(str(r["useful_tokens_per_s"]) for r in v)
                                                         for k, v in runs.items()))
    print(f"speedup ours/paper: {ratio:.2f}x (target >= 2x)")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")


def _default_collator():
    from transformers import default_data_collator

    return default_data_collator


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
