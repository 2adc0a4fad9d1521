"""How long and how much a corpus of N papers would take, stage by stage: rates measured here, figures published.

    python scripts/scale_estimate.py                   # 10,000 papers, markdown table (docs/scale.md)
    python scripts/scale_estimate.py --papers 500 --gpus 8 --json est.json

Measured here (results/documents/run.json, written by scripts/documents_run.py from a finished `data=documents` run
on 2 CPU cores): each stage's wall time and what it processed, so per paragraph: ingest seconds, teacher calls and
tokens, training rows and tokens, chunks indexed; per answer: seconds. The corpus: N papers of the paper's own
paragraph count (its SAI set in ../shared/seed: paragraphs per PDF that GPT-4 cut out, 1,332 over 23 papers).
Published (bench/published.yaml, each with its source): the OpenAI price of a hosted teacher, vLLM's output rate for
an 8B teacher on one H100, phi-1.5's own training throughput per A100 and GPU hour prices.

Every figure is a product of those: no stage was run at this scale. Assumptions, stated in the table's notes: the
per-paragraph work of the run's teacher and filters holds for the corpus (a GPT-4-class teacher writes longer
answers than the embedded one, so its token counts are a lower bound); GPU training scales linearly over
`train.num_processes` (DDP's ideal); vLLM's rate is decoding only (prefill not counted).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from sling.paths import DOCUMENTS_RUN  # scripts/documents_run.py writes it

RUN = ROOT / DOCUMENTS_RUN
PUBLISHED = ROOT / "bench" / "published.yaml"
SAI = ROOT.parent / "shared" / "seed" / "SAI_dataset" / "SAI_dataset_0312.csv"


def paragraphs_per_paper(path: Path = SAI) -> tuple[float, int, int]:
    """The paper's SAI set: rows (one paragraph each) per PDF. Rows with stray columns are still one paragraph."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: the estimate sizes a paper by the paper's own set (../shared/seed)")
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("pdf_name")]
    papers = len({r["pdf_name"] for r in rows})
    return len(rows) / papers, len(rows), papers


def hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def usd(low: float, high: float | None = None) -> str:
    fmt = (lambda x: f"${x:,.0f}") if low >= 10 else (lambda x: f"${x:,.2f}")
    return fmt(low) if high is None else f"{fmt(low)}-{fmt(high)}"


def estimate(run: dict, published: dict, papers: int, gpus: int) -> dict:
    if not run.get("work") or not run.get("stages"):
        raise SystemExit(f"{RUN} records no finished run's stage times and work: run "
                         "`python scripts/documents_run.py <folder>` (or --collect-only on a finished run) first")
    w, t = run["work"], run["stages"]
    per_paper, sai_rows, sai_papers = paragraphs_per_paper()
    P = papers * per_paper
    s = w["synthesize"]
    prompt_pp, completion_pp = s["prompt_tokens"] / s["paragraphs"], s["completion_tokens"] / s["paragraphs"]
    rows = P * s["rows"] / s["paragraphs"] * w["dataset"]["kept"] / w["dataset"]["input_rows"]
    d = w["train"]["domain"]
    tokens_per_row = d["tokens"] / (d["epochs"] * d["rows"])
    train_tokens = rows * tokens_per_row  # one epoch over the domain rows
    tp = published["training_gpu"]
    a100_rate = tp["tokens"] / (tp["gpus"] * tp["days"] * 86400)
    gpu_s = train_tokens / a100_rate
    a100, h100 = published["gpu_usd_per_hour"]["A100"], published["gpu_usd_per_hour"]["H100"]
    api, vllm = published["teacher_api"], published["teacher_vllm"]
    prompt_tokens, completion_tokens = P * prompt_pp, P * completion_pp
    vllm_s = completion_tokens / vllm["output_tokens_per_s"]
    chunks = P * w["index"]["chunks"] / w["benchmark_paragraphs"]
    stages = [
        {"stage": "ingest", "work": f"{P:,.0f} paragraphs",
         "here": hours(P * t["ingest"] / w["paragraphs"]), "scaled": "CPU: divides over `ingest.workers` per machine",
         "cost": "-"},
        {"stage": "synthesize (teacher)",
         "work": f"{P:,.0f} paragraphs; {prompt_tokens / 1e6:,.1f}M prompt + {completion_tokens / 1e6:,.1f}M completion tokens",
         "here": hours(P * t["synthesize"] / s["paragraphs"]) + " (embedded 135M teacher)",
         "scaled": f"{hours(vllm_s)} on one H100 (vLLM, {vllm['model'].split(',')[0]})",
         "cost": f"{usd(prompt_tokens / 1e6 * api['usd_per_million_input'] + completion_tokens / 1e6 * api['usd_per_million_output'])} "
                 f"({api['model']} API); {usd(vllm_s / 3600 * h100[0], vllm_s / 3600 * h100[1])} (H100 hours)"},
        {"stage": "train (domain adapter, 1 epoch)",
         "work": f"{rows:,.0f} rows, {train_tokens / 1e6:,.1f}M tokens",
         "here": hours(train_tokens / d["tokens_per_s"]) + " (SmolLM2-135M)",
         "scaled": f"{hours(gpu_s / gpus)} on {gpus} A100 (phi-1.5, `train.num_processes={gpus}`)",
         "cost": usd(gpu_s / 3600 * a100[0], gpu_s / 3600 * a100[1]) + " (A100 hours)"},
        {"stage": "index (embed chunks)", "work": f"{chunks:,.0f} chunks",
         "here": hours(chunks * t["index"] / w["index"]["chunks"]),
         "scaled": "CPU or GPU embedder; a Qdrant server (`rag.qdrant_url`) holds them", "cost": "-"},
        {"stage": "answer + score (benchmark)", "work": "the benchmark's questions (set by the power target, not by N)",
         "here": f"{t['answer_students'] / w['answer']['answers']:.1f} s per answer", "scaled": "vLLM (`rag.engine=openai`)",
         "cost": "-"},
    ]
    return {"papers": papers, "paragraphs_per_paper": round(per_paper, 1), "sai": [sai_rows, sai_papers],
            "paragraphs": round(P), "gpus": gpus, "a100_tokens_per_s": round(a100_rate), "stages": stages,
            "measured_on": run["machine"], "run": run["command"]}


def table(e: dict, published: dict) -> str:
    lines = [f"For {e['papers']:,} papers of {e['paragraphs_per_paper']} paragraphs each (the paper's SAI set: "
             f"{e['sai'][0]:,} paragraphs from {e['sai'][1]} papers), {e['paragraphs']:,} paragraphs. \"Here\": the "
             f"rates of the real-documents run (docs/documents.md; {e['measured_on']}); \"scaled out\": published figures.",
             "", "| stage | work | here (2 CPU cores) | scaled out | cost |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {s['stage']} | {s['work']} | {s['here']} | {s['scaled']} | {s['cost']} |" for s in e["stages"]]
    tp = published["training_gpu"]
    lines += ["", "Sources: " + "; ".join(
        [f"{published['teacher_api']['model']} prices: {published['teacher_api']['source']}",
         f"vLLM rate: {published['teacher_vllm']['source']}",
         f"A100 training rate {e['a100_tokens_per_s']:,} tokens/s per GPU = {tp['tokens']:.3g} tokens / ({tp['gpus']} "
         f"GPUs x {tp['days']} days): {tp['source']}",
         f"GPU prices: {published['gpu_usd_per_hour']['source']}"]) + ".",
              "", "Assumptions: the run's per-paragraph teacher tokens and filter yield hold for the corpus (a "
                  "GPT-4-class teacher writes longer answers than the embedded one: its token counts and cost are a "
                  "lower bound); phi-1.5's pretraining rate stands for LoRA training (LoRA skips the weight gradients, "
                  "so it is a conservative rate); training scales linearly over processes (DDP's ideal); vLLM's rate "
                  "counts decoding only; the \"here\" column scales whole stage times of a small run, each stage's start-up "
                  "(imports, model loads) included, so it is an upper bound."]
    return "\n".join(lines)


def main() -> None:
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--papers", type=int, default=10_000)
    ap.add_argument("--gpus", type=int, default=8, help="GPUs for training (train.num_processes)")
    ap.add_argument("--json", type=Path, help="also write the estimate as JSON")
    a = ap.parse_args()
    if not RUN.exists():
        raise SystemExit(f"{RUN} is missing: run `python scripts/documents_run.py <folder>` first")
    published = yaml.safe_load(PUBLISHED.read_text())
    e = estimate(json.loads(RUN.read_text()), published, a.papers, a.gpus)
    print(table(e, published))
    if a.json:
        a.json.write_text(json.dumps(e, indent=2) + "\n")


if __name__ == "__main__":
    main()
