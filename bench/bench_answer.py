"""Answers per second: the answer stage's batched path vs a paper-style loop, in one run.

    .venv/bin/python bench/bench_answer.py                          # 11 paper questions, 150 new tokens
    .venv/bin/python bench/bench_answer.py --questions 4 --max-new-tokens 40   # a quick look

Both sides answer the same RAG prompts (the question and the three context chunks the paper retrieved,
from `../shared/seed/paper_results/`, or the sample benchmark's source paragraphs when that is absent)
with the same model (the base snapshot, `models/base`) and decoding: greedy, `--max-new-tokens`,
repetition penalty 1.15.

- paper: one question at a time through `transformers.pipeline("text-generation")`, float32, as the paper's
  notebook did;
- ours-<dtype>-<prefill>: `pipeline.answer.generate` (near-equal batches of at most `--batch-size`, sorted by
  length, the key/value cache appended in place) on the model cast to each `--dtypes` entry (`rag.dtype`: float32,
  the stage's default, so that the default profile answers the same on any CPU; `auto`, as the real-run presets
  experiment=paper, paper_offline and study set it, is what sling.precision resolves it to on this machine,
  shown in the table), with each `--prefills` entry (`rag.prefill`: auto, the default, per_prompt, batched).
- llamacpp-<type>: the base snapshot written as GGUF of each `--llamacpp` type and decoded by llama.cpp one prompt
  at a time with the same token ids and choice rule (`rag.engine=llamacpp`, sling.models.llamacpp; needs
  `bash scripts/install.sh --llamacpp`, and runs f16 and q8_0 by default where that is installed).

Each side runs in its own child process so that its peak resident memory (ru_maxrss) is its own. Prints
the rates, the ratio of each of ours to the paper-style loop, peak memory, and how far the answers of each
side agree with the float32 paper-style answers (token F1: 1.0 = the same answers, so a faster dtype that
changes answers shows), and each side's token F1 to the reference answers (the paper's gpt_response) with a 95%
bootstrap interval over the prompts, which says whether a change costs quality; then the paired difference of
that F1 between the auto side (rag.dtype=auto) and the float32 side. Target: the auto side >= 5x the paper-style
loop, with F1 to the references not lower than the float32 side's.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from sling.paths import BASE_DIR

RESULTS = ROOT.parent / "shared" / "seed" / "paper_results"
PAPER = RESULTS / "single_paper_results_phi-1_5.csv"   # then the joint task's 25, for --questions past 11
PAPER_JOINT = RESULTS / "joint_paper_results_phi-1_5.csv"
SAMPLE = ROOT / "corpus" / "sample" / "benchmark" / "joint.jsonl"


def prompts_and_references(n: int, source: str = "paper") -> tuple[list[str], list[str], str]:
    """The RAG prompts, the reference answer of each (the paper's gpt_response; the sample's source paragraph):
    `source` paper (the sample where the paper's files are absent) or sample (short prompts: one paragraph each,
    the shape of the embedded teacher's prompts)."""
    from sling.config import compose
    from sling.io import read_jsonl

    template = compose([]).rag.prompt_template
    if PAPER.exists() and source == "paper":
        rows = []
        for path in (PAPER, PAPER_JOINT) if PAPER_JOINT.exists() else (PAPER,):
            with open(path, encoding="utf-8", newline="") as f:
                rows += list(csv.DictReader(f))
        items = [(r["question"], [r[f"context_chunk_{i}"] for i in (1, 2, 3)], r["gpt_response"]) for r in rows]
        source = str(PAPER.relative_to(ROOT.parent)) + ("" if n <= 11 else f" and {PAPER_JOINT.name}")
    else:
        items = [(r["question"], [r["text"]], r["text"]) for r in read_jsonl(SAMPLE)]
        source = str(SAMPLE.relative_to(ROOT))
    items = (items * (n // max(len(items), 1) + 1))[:n]
    return ([template.format(context="\n\n".join(c), question=q) for q, c, _ in items], [r for _, _, r in items],
            source)


def run_side(side: str, args) -> dict:
    """Answer every prompt on one side; returns answers, wall time, tokens and peak RSS."""
    import torch

    from sling.config import compose
    from sling.models.loading import load_tokenizer, torch_dtype
    from sling.retrieval.answering import generate

    torch.set_num_threads(args.threads)
    prefill = side.split("-")[2] if side.count("-") == 2 else "auto"
    cfg = compose([f"rag.max_new_tokens={args.max_new_tokens}", f"rag.batch_size={args.batch_size}",
                   f"rag.prefill={prefill}"])
    texts, _, _ = prompts_and_references(args.questions, args.prompts)
    tokenizer = load_tokenizer()
    from transformers import AutoModelForCausalLM

    from sling.precision import decode_dtype

    if side.startswith("llamacpp-"):
        return run_llamacpp(side, args, cfg, texts, tokenizer)
    dtype = "float32" if side == "paper" else decode_dtype(side.split("-")[1])
    model = AutoModelForCausalLM.from_pretrained(str(ROOT / BASE_DIR), dtype=torch_dtype(dtype)).eval()
    if side == "paper":
        from transformers import pipeline

        pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
        answers, tokens = [], 0
        t0 = time.perf_counter()
        for p in texts:  # the paper's loop: one question at a time
            out = pipe(p, max_new_tokens=cfg.rag.max_new_tokens, do_sample=False,
                       repetition_penalty=cfg.rag.repetition_penalty, return_full_text=False)
            answers.append(out[0]["generated_text"].strip())
            tokens += len(tokenizer(answers[-1], add_special_tokens=False)["input_ids"])
        wall = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        rows = generate(model, tokenizer, texts, cfg.rag)
        wall = time.perf_counter() - t0
        answers, tokens = [r["answer"] for r in rows], sum(r["answer_tokens"] for r in rows)
    return {"side": side, "dtype": dtype, "answers": answers, "wall_s": wall, "tokens": tokens,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_llamacpp(side: str, args, cfg, texts: list[str], tokenizer) -> dict:
    """The base snapshot written as GGUF of the side's type (sling.models.llamacpp.student_gguf, outside the timing)
    and decoded by llama.cpp one prompt at a time with the same token ids and decoding settings."""
    import tempfile

    from transformers import AutoModelForCausalLM

    from sling.models import llamacpp
    from sling.models.export import chat_template

    kind = side.split("-", 1)[1]
    model = AutoModelForCausalLM.from_pretrained(str(ROOT / BASE_DIR)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        template = chat_template(cfg.rag.prompt_template, cfg.rag.closed_book_template)
        path = llamacpp.student_gguf(model, tokenizer, kind, Path(tmp), template, cfg.export.tokenizer_pre, "base")
        del model
        llm = llamacpp.open_gguf(path, n_ctx=2048, threads=args.threads)
        t0 = time.perf_counter()
        rows = llamacpp.generate(llm, tokenizer, texts, max_new_tokens=cfg.rag.max_new_tokens,
                                 repetition_penalty=cfg.rag.repetition_penalty)
        wall = time.perf_counter() - t0
    return {"side": side, "dtype": kind, "answers": [r["answer"] for r in rows], "wall_s": wall,
            "tokens": sum(r["answer_tokens"] for r in rows),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=11,
                    help="how many prompts (the paper's single task has 11; up to 36 adds its joint task's 25)")
    ap.add_argument("--prompts", choices=("paper", "sample"), default="paper",
                    help="paper: the paper's questions with its three retrieved chunks (long prompts); sample: the "
                         "sample benchmark's questions with their source paragraph (short prompts, as the embedded "
                         "teacher's are)")
    ap.add_argument("--max-new-tokens", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtypes", default="auto,float32",
                    help="rag.dtype values to run our path in (comma-separated: auto, float32, bfloat16, float16)")
    ap.add_argument("--prefills", default="auto",
                    help="rag.prefill values to run our path with (comma-separated: auto, per_prompt, batched)")
    ap.add_argument("--llamacpp", default=None,
                    help="GGUF types to decode with llama.cpp as well (comma-separated: f16, q8_0, q4_1, q4_0; "
                         "default f16,q8_0 where llama-cpp-python is installed, `scripts/install.sh --llamacpp`)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bench_answer.json")
    args = ap.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args)))
        return
    if not (ROOT / BASE_DIR / "config.json").exists():
        raise SystemExit(f"{BASE_DIR} is missing: run `python -m pipeline.snapshot_model` first")
    _, references, source = prompts_and_references(args.questions, args.prompts)
    child = [f"--questions={args.questions}", f"--prompts={args.prompts}", f"--max-new-tokens={args.max_new_tokens}",
             f"--batch-size={args.batch_size}", f"--threads={args.threads}"]
    results = {}
    ours = [f"ours-{d}-{p}" for d in args.dtypes.split(",") for p in args.prefills.split(",")]
    from sling.models import llamacpp

    kinds = args.llamacpp if args.llamacpp is not None else "f16,q8_0" if llamacpp.available() else ""
    if not llamacpp.available() and kinds:
        llamacpp.require("--llamacpp")
    if not kinds:
        print(f"llama.cpp sides skipped: llama-cpp-python is not installed ({llamacpp.INSTALL})")
    ours += [f"llamacpp-{k}" for k in kinds.split(",") if k]
    for side in ["paper"] + ours:
        proc = subprocess.run([sys.executable, __file__, *child, "--side", side], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
        results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    import numpy as np

    from sling.scoring.metrics import token_f1

    def interval(values: list[float]) -> tuple[float, float]:
        rng = np.random.default_rng(0)
        means = rng.choice(np.array(values), size=(2000, len(values))).mean(axis=1)
        return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))

    paper = results["paper"]
    base_rate = args.questions / paper["wall_s"]
    print(f"prompts: {args.questions} from {source}; max_new_tokens={args.max_new_tokens}, batch={args.batch_size}, "
          f"threads={args.threads}")
    print(f"{'side':<26}{'dtype':>9}{'answers/s':>10}{'tokens/s':>10}{'ratio':>8}{'peak MB':>9}{'F1 vs paper':>13}"
          f"{'F1 vs ref [95% CI]':>24}{'empty':>7}")
    summary = {"questions": args.questions, "source": source, "max_new_tokens": args.max_new_tokens,
               "batch_size": args.batch_size, "threads": args.threads, "sides": {}}
    for side, r in results.items():
        rate = args.questions / r["wall_s"]
        empty = sum(not a.strip() for a in r["answers"])
        agree = sum(token_f1(a, b) for a, b in zip(r["answers"], paper["answers"])) / args.questions
        per_prompt_f1 = [token_f1(a, b) for a, b in zip(r["answers"], references)]
        quality, (lo, hi) = sum(per_prompt_f1) / args.questions, interval(per_prompt_f1)
        r["f1_vs_references"] = per_prompt_f1
        print(f"{side:<26}{r['dtype']:>9}{rate:>10.3f}{r['tokens'] / r['wall_s']:>10.1f}{rate / base_rate:>7.2f}x"
              f"{r['peak_rss_mb']:>9.0f}{agree:>13.3f}{f'{quality:.3f} [{lo:.3f}, {hi:.3f}]':>24}{empty:>7}")
        summary["sides"][side] = {"answers_per_s": round(rate, 4), "tokens_per_s": round(r["tokens"] / r["wall_s"], 2),
                                  "ratio_vs_paper": round(rate / base_rate, 3), "peak_rss_mb": round(r["peak_rss_mb"]),
                                  "token_f1_vs_paper_answers": round(agree, 3),
                                  "token_f1_vs_references": round(quality, 3),
                                  "token_f1_vs_references_ci95": [round(lo, 3), round(hi, 3)], "dtype": r["dtype"],
                                  "empty_answers": empty, "first_answer": r["answers"][0][:300]}
    auto, fp32 = "ours-auto-auto", "ours-float32-auto"  # the real-run presets' rag.dtype; the default profile's
    if auto in results and fp32 in results:
        diff = [a - b for a, b in zip(results[auto]["f1_vs_references"], results[fp32]["f1_vs_references"])]
        lo, hi = interval(diff)
        ratio = summary["sides"][auto]["ratio_vs_paper"]
        print(f"auto (rag.dtype=auto: {results[auto]['dtype']}, rag.prefill=auto): {ratio:.2f}x the paper-style "
              f"loop (target >= 5x); token F1 to the references minus the float32 side's: {sum(diff) / len(diff):+.3f} "
              f"[{lo:+.3f}, {hi:+.3f}] (target: not lower)")
        summary["auto_minus_float32_f1"] = {"mean": round(sum(diff) / len(diff), 4), "ci95": [round(lo, 4), round(hi, 4)]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
