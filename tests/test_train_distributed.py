"""The train stage under `accelerate launch` (train.launcher=accelerate): two gloo processes on this machine's CPUs
train the same adapter as one process.

The stage runs as DVC runs it, `python -m pipeline.train general <overrides>` in a subprocess, on a tiny random Llama
built here (tests/test_train.py) and the stage's own paths under SLING_WORKDIR. Both runs see the same 8 rows, the same
global batch of 4 rows and the same 8 steps; under two processes each takes 2 rows of every batch (accelerate's
split batches), DDP averages their gradients and the loss is averaged over the tokens of both shares, so the only
difference left is the order of floating-point sums (gradients all-reduced over gloo, losses summed per process).
LoRA dropout is 0 so that no random mask differs between one process and two (each process draws its own).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, mlflow_db
from tests.test_train import dataset, probe_ids, tiny_model

STEPS = 8
COMMON = ["train.lr=0.01", "train.warmup_steps=0", "train.batch_size=4", f"train.general_max_steps={STEPS}",
          "train.eval_steps=4", "train.save_steps=4", "train.logging_steps=1", "train.max_length=64",
          "train.precision=fp32", "lora.dropout=0.0"]
# Measured here: the two runs' curves are identical at the 5 decimals they are written with. The tolerance leaves
# room for another CPU's or thread count's summation order and is still far below what one step changes here
# (0.01 to 0.2 per step): a run that trained on other batches, or on each process's half alone, fails it.
TOLERANCE = 1e-3


def stage_env(work: Path) -> dict:
    return {**os.environ, "SLING_WORKDIR": str(work), "MLFLOW_TRACKING_URI": mlflow_db(work / "mlflow.db"),
            "OMP_NUM_THREADS": "1"}


def run_stage(work: Path, *overrides: str, common: list[str] = COMMON) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.train", "general", *common, *overrides], cwd=ROOT,
                          env=stage_env(work), capture_output=True, text=True, timeout=600)


def losses(work: Path, series: str) -> dict[int, float]:
    with open(work / "plots" / "loss" / "general" / f"{series}.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    out = {}
    for processes in (1, 2):
        work = tmp_path_factory.mktemp(f"p{processes}")
        tiny_model(work / "models" / "base")
        dataset(work / "data" / "datasets" / "general")
        launch = ["train.launcher=accelerate", f"train.num_processes={processes}"] if processes > 1 else []
        res = run_stage(work, *launch)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        out[processes] = work
    return out


def test_two_processes_train_the_same_adapter_as_one(runs):
    one, two = runs[1], runs[2]
    for series in ("train", "eval"):
        a, b = losses(one, series), losses(two, series)
        assert a.keys() == b.keys() and a, (series, a, b)
        worst = max(abs(a[s] - b[s]) for s in a)
        assert worst <= TOLERANCE, (series, worst, a, b)
    first, last = losses(two, "train")[1], losses(two, "train")[STEPS]
    assert last < 0.9 * first  # it learned: the comparison is not between two runs that did nothing

    m1 = json.loads((one / "metrics" / "train_general.json").read_text())
    m2 = json.loads((two / "metrics" / "train_general.json").read_text())
    assert m1["steps"] == m2["steps"] == STEPS and m1["train_rows"] == m2["train_rows"] == 8
    assert m2["processes"] == 2 and m2["backend"] == "gloo" and "processes" not in m1
    assert m2["tokens_per_s"] > 0 and abs(m2["padding_share"]) < 1
    assert not (two / "checkpoints" / "general").exists()  # finished: the checkpoints are gone on every rank


def test_both_adapters_load_and_generate(runs):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    outputs = {}
    for processes, work in runs.items():
        base = work / "models" / "base"
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base),
                                          work / "models" / "adapters" / "general").eval()
        with torch.no_grad():
            outputs[processes] = model.generate(probe_ids(base), max_new_tokens=4, do_sample=False)
        assert outputs[processes].shape[1] > probe_ids(base).shape[1]  # it generated (it may stop at its end token)
    assert torch.equal(outputs[1], outputs[2])  # equal weights up to rounding: the same greedy tokens


def test_only_rank_zero_writes_mlflow(runs):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{runs[2] / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sling")
    stage_runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("sling.stage") == "train_general"]
    assert len(stage_runs) == 1
    history = client.get_metric_history(stage_runs[0].info.run_id, "general.loss")
    assert sorted(h.step for h in history) == list(range(1, STEPS + 1))  # each step once, not once per rank
    assert stage_runs[0].data.params["train.num_processes"] == "2"


def test_a_batch_that_does_not_split_over_the_processes_is_an_error_naming_the_keys(tmp_path):
    res = run_stage(tmp_path, "train.launcher=accelerate", "train.num_processes=3")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "train.batch_size (4) must divide by train.num_processes (3)" in res.stderr


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_every_rank_from_the_same_checkpoint(tmp_path):
    """The launcher and both ranks killed at once after checkpoint-50; the re-run resumes both ranks from it."""
    tiny_model(tmp_path / "models" / "base")
    dataset(tmp_path / "data" / "datasets" / "general")
    long = [o for o in COMMON if not o.startswith(("train.general_max_steps", "train.save_steps", "train.eval_steps"))]
    long += ["train.general_max_steps=300", "train.save_steps=25", "train.eval_steps=300",
             "train.launcher=accelerate", "train.num_processes=2"]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.train", "general", *long], cwd=ROOT,
                            env=stage_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    saved = tmp_path / "checkpoints" / "general" / "checkpoint-50" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not saved.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before checkpoint-50"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "models" / "adapters" / "general").exists()

    res = run_stage(tmp_path, common=long)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((tmp_path / "metrics" / "train_general.json").read_text())
    assert m["resumed"] and m["resumed_from_step"] >= 50 and m["steps"] == 300 and m["processes"] == 2
    assert sorted(losses(tmp_path, "train")) == list(range(1, 301))  # the curve spans the whole run
    assert (tmp_path / "models" / "adapters" / "general" / "adapter_model.safetensors").is_file()
