"""Several candidates per paragraph against one: the synthesize stage's wall time and the valid rows it yields, both
ways in one run, on the same real paragraphs, with the embedded teacher.

    .venv/bin/python bench/bench_candidates.py /path/to/documents          # 24 paragraphs of the folder
    .venv/bin/python bench/bench_candidates.py /path/to/documents --paragraphs 48

Ingests the folder into a scratch work dir, takes `--paragraphs` paragraphs spread over its documents, and runs the
real `synthesize` function twice, each with a fresh reply cache:
- one: the default profile's way (one greedy question per paragraph, the teacher's answer, float32);
- several: data=documents' way (conf/documents_run/defaults.yaml: four candidates of the four question types, each
  ending at its question mark, extractive answers, a second round with examples, the teacher at `auto` precision).
Each side's rows then go through the training set's filters and the per-paragraph selection. Prints each side's
seconds, valid rows and valid rows per minute, and the ratios (target: several at least as fast per paragraph as one,
with more valid rows).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def side(overrides: list[str], paragraphs: list[dict], work: Path) -> dict:
    from sling.config import compose
    from sling.data.questions import select
    from sling.data.synthesis import synthesize
    from sling.teacher.quality import filter_rows

    cfg = compose(overrides)
    os.environ["SLING_WORKDIR"] = str(work)
    started = time.perf_counter()
    rows, _ = synthesize(cfg, paragraphs)
    seconds = time.perf_counter() - started
    kept, dropped, _ = filter_rows(cfg.dataset, rows)
    if any("question_type" in r for r in rows):
        kept = select(kept, cfg.synth.questions_per_paragraph)
    return {"seconds": round(seconds, 1), "candidates": len(rows), "valid": len(kept),
            "valid_per_min": round(60 * len(kept) / seconds, 2), "dropped": {k: v for k, v in dropped.items() if v}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--paragraphs", type=int, default=24)
    args = parser.parse_args()
    from sling.data.synthesis import spread
    from sling.io import read_jsonl

    scratch = Path(tempfile.mkdtemp(prefix="bench-candidates-"))
    (scratch / "models").symlink_to(ROOT / "models")
    os.environ["SLING_WORKDIR"] = str(scratch)
    from pipeline import ingest

    base = ["data=documents", f"data.corpus_dir={args.folder.resolve()}"]
    ingest.main(base)
    paragraphs = spread(read_jsonl(scratch / "data/ingested/paragraphs.jsonl"), args.paragraphs)
    one = ["synth.samples_per_paragraph=1", "synth.question_types=[]", "synth.questions_per_paragraph=1",
           "synth.reference=teacher", "synth.examples=0", "teacher.dtype=float32"]
    results = {}
    for name, extra in (("one", one), ("several", [])):
        work = scratch / name
        (work / "models").mkdir(parents=True)
        (work / "models/base").symlink_to(ROOT / "models/base")
        results[name] = side(base + extra, paragraphs, work)
        print(name, results[name], flush=True)
    a, b = results["one"], results["several"]
    print(f"{len(paragraphs)} paragraphs: several/one wall time {b['seconds'] / a['seconds']:.2f}x, valid rows "
          f"{b['valid']} vs {a['valid']} ({b['valid'] / max(a['valid'], 1):.2f}x), valid rows per minute "
          f"{b['valid_per_min'] / max(a['valid_per_min'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
