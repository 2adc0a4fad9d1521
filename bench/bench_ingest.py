"""Ingest at scale: documents/s with 2 workers against 1, and a warm re-run against a cold one, in one run.

    .venv/bin/python bench/bench_ingest.py                       # 50 distinct rendered PDFs, 4 to 28 sections
    .venv/bin/python bench/bench_ingest.py --documents 20 --sections 6
    .venv/bin/python bench/bench_ingest.py --folder corpus/papers  # your own folder of documents
    # real manuals of uneven length (6 to 177 pages) from Debian packages (apt-get install glpk-doc coinor-csdp-doc
    # libtasn1-doc shared-mime-info):
    mkdir -p /tmp/real && ln -sf /usr/share/doc/glpk-doc/*.pdf /usr/share/doc/coinor-csdp/csdpuser.pdf \
        /usr/share/doc/libtasn1-doc/libtasn1.pdf /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf /tmp/real/
    .venv/bin/python bench/bench_ingest.py --folder /tmp/real

Runs the real ingest stage (`pipeline.ingest.main`) in a fresh work dir per side. Speed-up: the same folder with
`ingest.workers=1` and `=2`, each with an empty cache, so every document is partitioned (target >= 1.7x). Cache:
one document added to the folder, re-run on the cache of the cold 2-worker run (target <= 10% of the cold time).
The times are whole stage runs, worker start-up (spawn) and output writing included. The stage submits the largest
documents first, so on a folder of uneven length the long one no longer runs alone at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path



def run_stage(folder: Path, work: Path, workers: int) -> float:
    """Seconds for one ingest stage run on `folder`, its outputs and cache under `work`."""
    from pipeline import ingest

    os.environ["SLING_WORKDIR"] = str(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    start = time.perf_counter()
    ingest.main([f"data.corpus_dir={folder}", f"ingest.workers={workers}", f"cache_dir={work / 'cache'}"])
    return time.perf_counter() - start


def build_folder(folder: Path, documents: int, sections: int) -> None:
    from sling.documents.render import make_pdf

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(documents):  # make_pdf is deterministic: distinct (sections, references) give distinct files
        make_pdf(folder / f"paper_{i:03d}.pdf", sections=sections + i // 2, references=i % 2 == 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, help="documents to ingest (default: render --documents PDFs)")
    ap.add_argument("--documents", type=int, default=50)
    ap.add_argument("--sections", type=int, default=4, help="sections of the smallest rendered PDF (about 3 per page)")
    args = ap.parse_args()
    from sling.documents.render import make_pdf

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        tmp = Path(tmp)
        folder = tmp / "corpus"
        if args.folder:
            shutil.copytree(args.folder, folder)
        else:
            build_folder(folder, args.documents, args.sections)
        n = sum(1 for p in folder.rglob("*") if p.is_file())
        one = run_stage(folder, tmp / "one", 1)
        two = run_stage(folder, tmp / "two", 2)
        make_pdf(folder / "paper_added.pdf", sections=args.sections + args.documents, references=False)
        warm = run_stage(folder, tmp / "two", 2)  # the cold 2-worker run's cache, one new document
    speedup, share = one / two, warm / two
    print(f"\n{'run':<34}{'docs':>6}{'seconds':>10}{'docs/s':>9}")
    for label, docs, sec in (("cold, 1 worker", n, one), ("cold, 2 workers", n, two),
                             ("warm, 2 workers, 1 doc added", n + 1, warm)):
        print(f"{label:<34}{docs:>6}{sec:>10.2f}{docs / sec:>9.2f}")
    print(f"\nspeed-up 2 workers / 1: {speedup:.2f}x (target >= 1.7x) {'PASS' if speedup >= 1.7 else 'MISS'}")
    print(f"warm re-run / cold run: {share:.1%} (target <= 10%) {'PASS' if share <= 0.10 else 'MISS'}")


if __name__ == "__main__":
    main()
