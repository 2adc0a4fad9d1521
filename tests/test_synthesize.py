"""The synthesize stage against a real OpenAI-compatible server (llm-katan on 127.0.0.1), and for real
through transformers with the packaged model.

The server's /metrics counts completions it answered successfully and /stats counts every request, so
"every paragraph is done exactly once" is read from the server, not from the client's own bookkeeping.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.bench_synthesis import katan_server, run_synthesize, write_paragraphs

SECRET = "sk-test-do-not-leak-7f3a"
OUTPUTS = ("data/synthetic/qa.jsonl", "data/synthetic/provenance.json")


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return tmp_path / "work"


def rows_of(work: Path) -> list[dict]:
    return [json.loads(line) for line in (work / OUTPUTS[0]).read_text().splitlines()]


def cached_replies(work: Path) -> int:
    return sum(1 for _ in (work / ".cache/teacher").rglob("*.json"))


@pytest.mark.slow
def test_every_paragraph_exactly_once_despite_errors_and_rerun_asks_nothing(work, tmp_path):
    paragraphs = write_paragraphs(work, 12)
    # an error on half the calls, so 24 calls all answered at the first try are a 6e-8 chance, and 40 retries
    with katan_server(tmp_path / "server", "--error-rate", "0.5", "--max-concurrent", "4") as server:
        metrics = run_synthesize(work, server, 4, "teacher.max_retries=40")
        rows = rows_of(work)
        assert sorted(r["paragraph_hash"] for r in rows) == sorted(p["paragraph_hash"] for p in paragraphs)
        # One question and one answer per paragraph answered by the server, no more: retries of the
        # injected 500s are attempts, not completions.
        assert server.completions() == 2 * len(paragraphs)
        assert server.attempts() > server.completions(), "the server injected no error; the test proves nothing"
        assert metrics["calls"] == 2 * len(paragraphs) and metrics["failed_calls"] == 0
        assert metrics["prompt_tokens"] > 0 and metrics["completion_tokens"] > 0
        for r in rows:  # lineage on every row; the echo server repeats the prompt, so the paragraph is in it
            assert r["teacher"] == "openai:echo" and r["prompt_version"] == "v2" and r["seed"] == 42
            assert r["paragraph"] in r["question"] and r["doc_id"] and r["page"] >= 1
        first = {rel: (work / rel).read_bytes() for rel in OUTPUTS}

        done = server.completions()
        again = run_synthesize(work, server, 4, "teacher.max_retries=40")
        assert server.completions() == done, "a re-run asked the server again"
        assert again["cache_hits"] == 2 * len(paragraphs) and again["calls"] == 0
        for rel, data in first.items():
            assert (work / rel).read_bytes() == data, f"{rel} differs on a re-run with the same params"
    # The key went to the server only: not into outputs, metrics, params.yaml-like provenance or MLflow.
    mlflow_db = Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    for path in [*(work / rel for rel in OUTPUTS), work / "metrics/synthesize.json", mlflow_db]:
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_rate_limited_run_fails_clearly_keeps_finished_calls_and_resumes(work, tmp_path):
    from sling.data.synthesis import SynthesisError

    paragraphs = write_paragraphs(work, 6)
    with katan_server(tmp_path / "limited", "--rate-limit-after", "5", "--max-concurrent", "4") as server:
        with pytest.raises(SynthesisError, match="finished calls are cached, re-run to retry") as err:
            run_synthesize(work, server, 4, "teacher.max_retries=1")
        assert "RateLimitError" in str(err.value)
        assert server.completions() == 5
    assert cached_replies(work) == 5
    assert not (work / OUTPUTS[0]).exists(), "a failed run must not leave a partial dataset"
    with katan_server(tmp_path / "fresh") as server:
        metrics = run_synthesize(work, server, 4)
        assert server.completions() == 2 * len(paragraphs) - 5  # only what the first run did not finish
    assert metrics["cache_hits"] == 5 and len(rows_of(work)) == len(paragraphs)


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_repeats_no_finished_call(work, tmp_path):
    paragraphs = write_paragraphs(work, 16)
    total = 2 * len(paragraphs)
    with katan_server(tmp_path / "server", "--latency-ms", "300", "--max-concurrent", "2") as server:
        args = [sys.executable, "-m", "pipeline.synthesize", "teacher=openai", f"teacher.base_url={server.base_url}",
                "teacher.model=echo", "teacher.concurrency=2", "synth.max_paragraphs=null"]
        root = Path(__file__).resolve().parent.parent
        log = open(tmp_path / "stage.log", "wb")
        proc = subprocess.Popen(args, cwd=root, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not (work / ".cache/teacher").exists() or cached_replies(work) < 6:
            assert proc.poll() is None, (tmp_path / "stage.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the stage made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        assert proc.returncode == -signal.SIGKILL
        finished = cached_replies(work)
        assert 6 <= finished < total, "the kill did not land mid-run"
        assert not (work / OUTPUTS[0]).exists()
        time.sleep(0.8)  # let requests that were in flight at the kill reach the server's counter
        before = server.completions()

        metrics = run_synthesize(work, server, 2)
        assert server.completions() - before == total - finished, "a finished call was asked again"
        assert metrics["cache_hits"] == finished and metrics["calls"] == total - finished
    rows = rows_of(work)
    assert len(rows) == len(paragraphs)
    assert len({r["paragraph_hash"] for r in rows}) == len(paragraphs), "a row is duplicated"


def test_missing_api_key_names_the_variable(work, monkeypatch):
    from sling.teacher.client import TeacherError

    write_paragraphs(work, 2)
    monkeypatch.delenv("OPENAI_API_KEY")
    from pipeline import synthesize

    with pytest.raises(TeacherError, match="OPENAI_API_KEY"):
        synthesize.main(["teacher=openai", "teacher.base_url=http://127.0.0.1:9/v1"])


def test_cache_key_changes_with_every_part():
    from sling.teacher.cache import ReplyCache

    base = dict(teacher="openai:m", prompt_version="v1", prompt="p", max_new_tokens=8, temperature=0.0)
    keys = {ReplyCache.key(**base)}
    for k, v in [("teacher", "openai:n"), ("prompt_version", "v2"), ("prompt", "q"), ("max_new_tokens", 9),
                 ("temperature", 0.5)]:
        keys.add(ReplyCache.key(**(base | {k: v})))
    assert len(keys) == 6


@pytest.fixture(scope="session")
def base_snapshot(tmp_path_factory) -> Path:
    """The packaged SmolLM2 dequantised into a tmp work dir (the snapshot_model stage, for real)."""
    from pipeline import snapshot_model
    from sling.config import ROOT

    work = tmp_path_factory.mktemp("snapshot")
    (work / "models").mkdir()
    (work / "models/pretrained").symlink_to(ROOT / "models/pretrained", target_is_directory=True)  # models.dvc's
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLING_WORKDIR", str(work))
        snapshot_model.main(["model.dtype=float32"])
    return work / "models/base"


@pytest.mark.slow
def test_embedded_teacher_generates_for_real_and_deterministically(work, base_snapshot, tmp_path):
    import shutil

    from pipeline import synthesize

    (work / "models").mkdir(parents=True, exist_ok=True)
    (work / "models/base").symlink_to(base_snapshot, target_is_directory=True)
    write_paragraphs(work, 3)
    overrides = ["teacher=embedded", "teacher.max_new_tokens=20", "synth.max_paragraphs=null"]
    synthesize.main(overrides)
    rows = rows_of(work)
    assert len(rows) == 3
    assert all(r["teacher"] == "embedded:SmolLM2-135M-Instruct" for r in rows)
    assert all(r["question"].strip() and r["answer"].strip() and r["paragraph"] not in r["question"] for r in rows)
    first = {rel: (work / rel).read_bytes() for rel in OUTPUTS}
    shutil.rmtree(work / ".cache")  # generate again from scratch: greedy decoding gives the same bytes
    synthesize.main(overrides)
    metrics = json.loads((work / "metrics/synthesize.json").read_text())
    assert metrics["calls"] == 6 and metrics["cache_hits"] == 0
    for rel, data in first.items():
        assert (work / rel).read_bytes() == data, rel


def test_the_paragraph_cap_is_spread_over_every_document():
    from sling.data.synthesis import spread

    paragraphs = [{"doc_id": d, "para_num": i} for d, n in (("a", 5), ("b", 1), ("c", 3)) for i in range(n)]
    picked = spread(paragraphs, 5)
    assert [(p["doc_id"], p["para_num"]) for p in picked] == [("a", 0), ("a", 1), ("b", 0), ("c", 0), ("c", 1)]
    assert spread(paragraphs, 100) == paragraphs
