"""A `data=documents` run on a folder of real documents, recorded for the docs (docs/documents.md): the benchmark card, the verdicts
and the run time.

    python scripts/documents_run.py /path/to/documents                 # runs the pipeline here, then collects
    python scripts/documents_run.py /path/to/documents --collect-only --from /path/to/checkout   # a finished run

The run is `dvc exp run -S data=documents -S data.corpus_dir=<folder>` in this checkout (or, with --collect-only, one
already made in --from). Collected into results/documents/: run.json (the command, the documents with their sizes
and languages, the wall time of the pipeline run as MLflow recorded it from its first stage to its last, the machine,
the benchmark card from metrics/benchmark.json, the leakage count, and per task the questions, languages, power and
paired differences from metrics/scores.json) and questions/<task>.jsonl (each kept question with its reference,
without the documents' own text). `python scripts/update_readme.py --documents` writes that page's section from it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from sling.paths import (
    BENCHMARK_METRICS,
    DATASET_METRICS,
    DOCUMENTS_RUN,
    DOCUMENTS_RUN_DIR,
    INDEX_METRICS,
    INGEST_METRICS,
    LEAKAGE_METRICS,
    PARAGRAPHS,
    SCORES,
    SPLIT,
    SYNTHESIZE_METRICS,
    TASKS,
    answers_path,
    train_metrics_path,
)

OUT = ROOT / DOCUMENTS_RUN_DIR


def read(checkout: Path, rel: str):
    path = checkout / rel
    if not path.exists():
        raise SystemExit(f"{path} is missing: the run in {checkout} did not finish (re-run it, or fix --from)")
    return json.loads(path.read_text(encoding="utf-8"))


def run_times(checkout: Path) -> tuple[float, dict[str, float]]:
    """The newest finished data=documents pipeline run's length, as its MLflow parent run recorded it (first stage to
    last), and each stage's wall time in it, from its MLflow stage run (start to end)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{checkout / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sling")
    runs = [r for r in client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
            if r.data.tags.get("sling.kind") == "pipeline" and r.data.params.get("data.name") == "documents"]
    if not runs or runs[0].info.end_time is None:
        raise SystemExit(f"{checkout / 'mlflow.db'} holds no finished data=documents pipeline run")
    parent = runs[0]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    stages = {r.data.tags["sling.stage"]: round((r.info.end_time - r.info.start_time) / 1000, 1)
              for r in children if r.info.end_time and r.data.tags.get("sling.stage")}
    return (parent.info.end_time - parent.info.start_time) / 1000, stages


def work_done(checkout: Path) -> dict:
    """What each stage of the run processed, in the units its rate is measured in (scripts/scale_estimate.py)."""
    ingest, synth = read(checkout, INGEST_METRICS), read(checkout, SYNTHESIZE_METRICS)
    bench, dataset = read(checkout, BENCHMARK_METRICS), read(checkout, DATASET_METRICS)
    index = read(checkout, INDEX_METRICS)
    trained = {}
    for stage in ("general", "domain"):
        m = read(checkout, train_metrics_path(stage))
        trained[stage] = {"tokens": round(m["tokens_per_s"] * m["wall_time_s"]), "rows": m["train_rows"],
                          "steps": m["steps"], "epochs": m["epochs"], "tokens_per_s": m["tokens_per_s"]}
    students = (checkout / answers_path("base", "any")).parent  # every variant's answers, closed-book ones below it
    answers = sum(1 for f in students.rglob("*.jsonl")
                  for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
    held_out = set(read(checkout, SPLIT)["benchmark"])
    benchmark_paragraphs = sum(1 for line in (checkout / PARAGRAPHS).open(encoding="utf-8")
                               if line.strip() and json.loads(line)["doc_id"] in held_out)
    return {"documents": ingest["documents"], "paragraphs": ingest["paragraphs"],
            "benchmark_paragraphs": benchmark_paragraphs,
            "synthesize": {k: synth[k] for k in ("paragraphs", "rows", "calls", "prompt_tokens", "completion_tokens")},
            "benchmark": {k: bench[k] for k in ("calls", "prompt_tokens", "completion_tokens", "generated", "kept")},
            "dataset": {"input_rows": dataset["input_rows"], "kept": dataset["kept"]},
            "train": trained, "index": {"chunks": sum(t["chunks"] for t in index.values())},
            "answer": {"answers": answers}}


def collect(checkout: Path, corpus: Path, command: str) -> dict:
    from sling.io import write_json, write_jsonl
    from sling.environment import summary

    bench, scores = read(checkout, BENCHMARK_METRICS), read(checkout, SCORES)
    dataset = read(checkout, DATASET_METRICS)
    leak, ingest = read(checkout, LEAKAGE_METRICS), read(checkout, INGEST_METRICS)
    tasks = read(checkout, TASKS)["tasks"]
    if set(scores) != set(tasks):  # the run stopped before its score stage: these are an older run's scores
        scores = {}
    wall, stages = run_times(checkout) if scores else (None, None)
    languages = ingest.get("language_by_document", {})
    documents = [{"document": p.name, "bytes": p.stat().st_size, "language": languages.get(p.name)}
                 for p in sorted(corpus.iterdir()) if p.is_file()]
    for stale in (OUT / "questions").glob("*.jsonl"):  # an earlier run's tasks
        stale.unlink()
    for name, t in tasks.items():
        rows = [json.loads(line) for line in (checkout / t["questions"]).read_text(encoding="utf-8").splitlines()]
        write_jsonl(OUT / "questions" / f"{name}.jsonl",
                    [{k: r[k] for k in ("id", "question", "reference", "document", "language")} for r in rows])
    record = {
        "command": command, "documents": documents, "machine": summary(),
        "wall_s": round(wall, 1) if scores else None,  # None: stopped before it finished
        "stages": stages if scores else None, "work": work_done(checkout) if scores else None,
        "benchmark": {k: bench[k] for k in ("questions_per_document", "sampled_paragraphs", "rounds", "generated",
                                            "kept", "funnel", "critic", "tasks", "card_samples", "teacher",
                                            "question_types", "reference", "findable_top_k", "findable_k",
                                            "benchmark_paragraphs", "dropped", "multihop")
                      if k in bench},
        "training_set": {k: dataset[k] for k in ("input_rows", "kept", "train_rows", "eval_rows") if k in dataset},
        "split": {k: bench[k] for k in ("documents", "train_documents", "benchmark_documents")},
        "leakage": {"leaked": leak["leaked"], "benchmark_questions": leak["benchmark_questions"]},
        "tasks": {task: {"questions": s["questions"], "languages": s.get("languages"), "power": s.get("power"),
                         "paired": {p: {k: d[k] for k in ("rescaled", "token_f1_rescaled")}
                                    for p, d in s["paired"].items() if p.endswith("-base")},
                         "retrieval_gain": {v: g["rescaled"] for v, g in s.get("retrieval_gain", {}).items()},
                         "easy_questions": (s.get("easy_questions") or {}).get("count")}
                  for task, s in scores.items()},
    }
    write_json(ROOT / DOCUMENTS_RUN, record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path, help="the folder of documents")
    parser.add_argument("--collect-only", action="store_true", help="collect a finished run, do not run one")
    parser.add_argument("--from", dest="checkout", type=Path, default=ROOT, help="the checkout that ran it")
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    if not corpus.is_dir():
        raise SystemExit(f"{corpus} is not a folder of documents")
    command = f"dvc exp run -S data=documents -S data.corpus_dir={corpus}"
    if not args.collect_only:
        env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        subprocess.run(command.split(), cwd=args.checkout, check=True, env=env)
    record = collect(args.checkout.resolve(), corpus, command)
    took = f"{record['wall_s'] / 60:.1f} min" if record["wall_s"] else "stopped before its score stage"
    print(f"{DOCUMENTS_RUN}: {len(record['documents'])} documents, {record['benchmark']['kept']} questions "
          f"kept of {record['benchmark']['generated']}, {took}")


if __name__ == "__main__":
    main()
