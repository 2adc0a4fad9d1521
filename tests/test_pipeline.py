"""Integration: the real DVC pipeline on the sample profile with tiny settings, end to end.

Runs in a copy of the working tree (a fresh git repository in a temporary folder), so nothing here touches
the developer's outputs. Covers: `dvc repro` completes every stage and writes metrics and plots; a second
`dvc repro` has nothing to do; MLflow holds one run per stage, tagged, with no secret; `dvc exp run -S
lora.r=8` re-runs training and what follows but nothing upstream; `dvc push` to a local-directory remote,
a fresh clone and `dvc pull` bring back the adapters and data.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGES = ["snapshot_model", "ingest", "synthesize", "build_dataset", "general_data", "train_general", "train_domain",
          "index", "reference", "answer", "score", "rescore_paper", "report"]


def sh(cmd: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"} | (env or {})
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_tree(dst: Path) -> None:
    """The files git would carry: tracked and untracked-not-ignored, as a clone of this state would have."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    repo = work / "repo"
    repo.mkdir()
    copy_tree(repo)
    # The shipped dvc.lock records the default profile; this copy runs the smoke experiment from scratch.
    (repo / "dvc.lock").unlink(missing_ok=True)
    db = work / "mlflow.db"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}", "OPENAI_API_KEY": "sk-test-secret-must-not-leak"}
    sh("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base", repo)
    sh(f"{sys.executable} -m pipeline.compose experiment=smoke", repo)
    sh(f"dvc remote add -f -d --local local {work / 'remote'}", repo)
    return {"path": repo, "work": work, "env": env, "db": db}


def test_repro_runs_every_stage_and_writes_metrics_and_plots(repo):
    r = repo["path"]
    out = sh("dvc repro", r, repo["env"])
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out.stdout, stage
    for f in ["ingest", "synthesize", "dataset", "general_data", "train_general", "train_domain", "index", "answer",
              "scores", "report"]:
        data = json.loads((r / f"metrics/{f}.json").read_text())
        assert data, f
    assert (r / "models/adapters/general/adapter_model.safetensors").exists()
    assert (r / "models/adapters/domain/adapter_config.json").exists()
    assert (r / "reports/report.html").stat().st_size > 10_000
    curve = (r / "plots/train_general.csv").read_text().splitlines()
    assert curve[0] == "step,train_loss,eval_loss" and len(curve) >= 3
    shown = sh("dvc metrics show --json", r).stdout
    assert "train_loss" in shown and "recall_at_3" in shown
    sh("dvc plots show -o plots_html", r)
    assert (r / "plots_html/index.html").exists()


def test_second_repro_has_nothing_to_do(repo):
    out = sh("dvc repro", repo["path"], repo["env"])
    assert "Running stage" not in out.stdout
    assert "up to date" in out.stdout.lower()


def test_mlflow_has_one_tagged_run_per_stage_and_no_secret(repo):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo['db']}")
    exp = client.get_experiment_by_name("sling")
    runs = client.search_runs([exp.experiment_id], max_results=200)
    stages = sorted({run.data.tags["sling.stage"] for run in runs})
    assert stages == sorted(["snapshot_model", "ingest", "synthesize", "build_dataset", "general_data", "train_general",
                             "train_domain", "index", "answer_reference", "answer_students", "score", "rescore_paper",
                             "report"])
    for run in runs:
        assert run.data.tags["dvc.exp_name"]
        assert "sk-test-secret-must-not-leak" not in json.dumps(run.data.params)
    train = [run for run in runs if run.data.tags["sling.stage"] == "train_general"][0]
    assert train.data.params["lora.r"] == "16" and "general.final.train_loss" in train.data.metrics
    history = client.get_metric_history(train.info.run_id, "general.loss")
    assert len(history) >= 2 and history[0].step < history[-1].step


def test_push_clone_pull_round_trip(repo):
    r, work = repo["path"], repo["work"]
    sh("git add -A && git -c user.name=t -c user.email=t@t commit -qm smoke-run", r)  # dvc.lock and metrics
    sh("dvc push", r)
    clone = work / "clone"
    sh(f"git clone -q {r} {clone}", work)
    sh(f"dvc remote add -f -d --local local {work / 'remote'}", clone)
    sh("dvc pull", clone)
    for f in ["models/adapters/general/adapter_model.safetensors", "models/adapters/domain/adapter_model.safetensors",
              "data/datasets/domain/train.jsonl", "data/ingested/paragraphs.jsonl", "models/base/model.safetensors"]:
        assert (clone / f).exists(), f
    assert (clone / "data/datasets/domain/train.jsonl").read_bytes() == (r / "data/datasets/domain/train.jsonl").read_bytes()
    status = sh("dvc status", clone).stdout
    assert "changed" not in status


def test_exp_run_reruns_training_and_downstream_only(repo):
    r = repo["path"]
    out = sh("dvc exp run -S experiment=smoke -S lora.r=8", r, repo["env"])
    ran = [s for s in STAGES if f"Running stage '{s}'" in out.stdout]
    assert ran[:2] == ["train_general", "train_domain"], ran
    assert not {"snapshot_model", "ingest", "synthesize", "build_dataset", "general_data", "index", "reference",
                "rescore_paper"} & set(ran)
    shown = json.loads(sh("dvc exp show --json", r).stdout)
    assert "lora" in json.dumps(shown) and '"r": 8' in json.dumps(shown)
