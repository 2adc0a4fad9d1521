"""Synthesis throughput: rows/s with `teacher.concurrency` 8 against 1, in one run, same paragraphs.

    .venv/bin/python bench/bench_synthesis.py                      # 48 paragraphs, 200 ms latency
    .venv/bin/python bench/bench_synthesis.py --paragraphs 16 --latency-ms 200 --concurrency 8

Starts a real OpenAI-compatible server (llm-katan, echo backend, `--latency-ms`) on 127.0.0.1, writes the
same synthetic paragraphs for both sides, and runs the real synthesize stage once per concurrency level,
each with a fresh reply cache and work dir, so every row costs two real HTTP calls. Prints both rates and
the ratio (target >= 6x). `katan_server` is also what the synthesis tests start their server with.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator



class KatanServer:
    """A running llm-katan process: its base URL and its request counters."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.read()

    def completions(self) -> int:
        """Chat completions the server answered successfully (/metrics counts only those)."""
        text = self._get("/metrics").decode()
        return int(re.search(r"^llm_katan_requests_total\{[^}]*\} (\d+)", text, re.M).group(1))

    def attempts(self) -> int:
        """Every request to an API route, failed or not (/stats, recorded per request)."""
        return int(json.loads(self._get("/stats"))["total"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def katan_server(workdir: Path, *args: str, model: str = "echo", backend: str = "echo",
                 ready_s: float = 120) -> Iterator[KatanServer]:
    """Start `llm-katan --backend <backend>` on 127.0.0.1 with a free port; stop it on exit."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"katan-{port}.log"
    exe = Path(sys.executable).with_name("llm-katan")
    cmd = [str(exe), "--model", model, "--backend", backend, "--host", "127.0.0.1", "--port", str(port),
           "--stats-file", str(workdir / f"katan-{port}-stats.json"), "--log-level", "warning", *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = KatanServer(proc, port, log)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llm-katan exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                server._get("/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"llm-katan not ready on port {port} after {ready_s} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_paragraphs(work: Path, n: int, documents: int = 4) -> list[dict]:
    """`n` distinct paragraphs over `documents` documents, as the ingest stage writes them, all of them for training
    (the split the benchmark stage writes when the benchmark's tasks are named)."""
    from sling.io import sha256_text, write_json, write_jsonl
    from sling.paths import PARAGRAPHS, SPLIT

    rows = []
    for i in range(n):
        text = (f"Paragraph {i} of the benchmark corpus explains that adapter number {i} changes "
                f"{i % 7 + 1} layers and keeps the base weights frozen, which makes training cheap.")
        doc = i % documents
        rows.append({"doc_id": f"doc{doc:04d}", "document": f"doc{doc}.pdf", "page": 1 + i // documents,
                     "para_num": i + 1, "element_types": ["NarrativeText"], "text": text,
                     "paragraph_hash": sha256_text(text)[:16]})
    write_jsonl(work / PARAGRAPHS, rows)
    write_json(work / SPLIT, {"mode": "named_tasks", "train": {r["doc_id"]: r["document"] for r in rows}, "benchmark": {}})
    return rows


def run_synthesize(work: Path, server: KatanServer, concurrency: int, *extra: str) -> dict:
    """The real stage in `work` against `server`; returns its metrics."""
    from pipeline import synthesize
    from sling.paths import SYNTHESIZE_METRICS

    os.environ["SLING_WORKDIR"] = str(work)
    synthesize.main(["teacher=openai", f"teacher.base_url={server.base_url}", "teacher.model=echo",
                     f"teacher.concurrency={concurrency}", "synth.max_paragraphs=null", *extra])
    return json.loads((work / SYNTHESIZE_METRICS).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paragraphs", type=int, default=48)
    ap.add_argument("--latency-ms", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-local")
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        rates = {}
        # The server must not be the bottleneck: let it serve as many requests at once as the client sends.
        with katan_server(tmp, "--latency-ms", str(args.latency_ms), "--max-concurrent", str(args.concurrency),
                          "--disable-dashboard") as server:
            for c in (1, args.concurrency):
                work = tmp / f"c{c}"
                write_paragraphs(work, args.paragraphs)
                before = server.completions()
                started = time.perf_counter()
                metrics = run_synthesize(work, server, c)
                elapsed = time.perf_counter() - started
                calls = server.completions() - before
                assert metrics["rows"] == args.paragraphs and calls == 2 * args.paragraphs, (metrics, calls)
                rates[c] = metrics["rows_per_s"]
                print(f"concurrency {c}: {metrics['rows']} rows, {calls} calls, stage {elapsed:.1f} s, "
                      f"{rates[c]:.2f} rows/s (teacher calls only)")
    ratio = rates[args.concurrency] / rates[1]
    print(f"speed-up concurrency {args.concurrency} vs 1: {ratio:.2f}x (target >= 6x) "
          f"[{args.paragraphs} paragraphs, latency {args.latency_ms} ms]")


if __name__ == "__main__":
    main()
