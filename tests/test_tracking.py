"""MLflow as a team reads it, on a real SQLite backend: the experiment opens on its runs, one parent per pipeline
run with the stages nested under it, the parent holding the params that differ from the defaults and the headline
metrics, datasets logged as MLflow datasets, and a failing stage marking its pipeline run failed."""
from __future__ import annotations

import json

import mlflow
import pytest


@pytest.fixture
def client(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return mlflow.MlflowClient(tracking_uri=uri)


def runs(client) -> list:
    exp = client.get_experiment_by_name("sling")
    return client.search_runs([exp.experiment_id], max_results=100)


def test_one_parent_per_pipeline_run_with_its_stages_nested(client, cfg_factory, monkeypatch, tmp_path):
    from sling.environment import run_environment, summary
    from sling.tracking.runs import log_dataset, log_headline, log_metrics, stage_run

    cfg = cfg_factory("lora.r=8")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p{i}", "messages": [{"role": "user"}]}) + "\n" for i in range(3)))
    for key in ("run-1", "run-2"):
        monkeypatch.setenv("SLING_PIPELINE_RUN", key)
        for stage in ("build_dataset", "score", "report"):
            with stage_run(stage, cfg):
                log_metrics({"x": 1.0})
                if stage == "build_dataset":
                    log_dataset(data, "domain-train", "training")
                if stage == "score":
                    log_headline({"joint": {"domain": {"rescaled": 0.4}}})
    env = run_environment()
    exp = client.get_experiment_by_name("sling")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    everything = runs(client)
    parents = [r for r in everything if r.data.tags.get("sling.kind") == "pipeline"]
    assert len(parents) == 2 and {p.data.tags["sling.pipeline_run"] for p in parents} == {"run-1", "run-2"}
    for parent in parents:
        children = [r for r in everything if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(r.data.tags["sling.stage"] for r in children) == ["build_dataset", "report", "score"]
        assert parent.data.params == {"lora.r": "8"}  # only what differs from conf/'s defaults
        assert parent.data.tags["sling.env.cpu.model"] == env["cpu"]["model"]  # where it ran, as tags
        assert parent.data.tags["sling.env.versions.torch"] == env["versions"]["torch"]
        assert parent.data.tags["sling.env.precision_auto.train"] == env["precision_auto"]["train"]
        assert parent.data.tags["sling.env.summary"] == summary(env)
        assert parent.data.metrics["joint.domain.rescaled"] == 0.4
        assert parent.info.status == "FINISHED"  # the report stage ended it
        child = next(r for r in children if r.data.tags["sling.stage"] == "build_dataset")
        inputs = child.inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["domain-train"] and inputs[0].dataset.digest
        assert inputs[0].tags[0].value == "training"
    # scripts/mlflow_runs.py prints the same tree: two parents, each with its three stages folded under it
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("mlflow_runs", Path(__file__).parents[1] / "scripts/mlflow_runs.py")
    mlflow_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mlflow_runs)
    text = mlflow_runs.tree(client, metrics="rescaled")
    assert text.splitlines()[0] == "experiment sling (custom_model_development): 2 pipeline run(s)"
    assert text.count("params: lora.r=8") == 2 and text.count("joint.domain.rescaled = 0.4") == 2
    assert text.count("  └─ build_dataset [FINISHED]") == 2 and text.count("datasets: domain-train") == 2
    assert mlflow_runs.tree(client, last=1).count("params: lora.r=8") == 1


def test_a_failing_stage_marks_its_pipeline_run_failed(client, cfg_factory, monkeypatch):
    from sling.tracking.runs import stage_run

    monkeypatch.setenv("SLING_PIPELINE_RUN", "run-failing")
    with pytest.raises(RuntimeError), stage_run("train_general", cfg_factory()):
        raise RuntimeError("out of memory")
    parent = next(r for r in runs(client) if r.data.tags.get("sling.kind") == "pipeline")
    assert parent.info.status == "FAILED"


def test_outside_dvc_a_stage_has_no_parent(client, cfg_factory, monkeypatch):
    from sling.tracking.runs import pipeline_run_key, stage_run

    monkeypatch.delenv("SLING_PIPELINE_RUN", raising=False)
    assert pipeline_run_key() is None  # pytest is not run by dvc
    with stage_run("index", cfg_factory()):
        pass
    (only,) = runs(client)
    assert "mlflow.parentRunId" not in only.data.tags


def test_teacher_calls_are_traced_with_their_usage_and_no_key(client, tmp_path, monkeypatch):
    """synthesize with teacher=openai against a real OpenAI-compatible server (llm-katan's echo backend)."""
    from bench.bench_synthesis import katan_server, run_synthesize, write_paragraphs

    secret = "sk-trace-secret-must-not-leak"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    work = tmp_path / "work"
    write_paragraphs(work, 3)
    with katan_server(tmp_path / "server") as server:
        run_synthesize(work, server, 2)
    exp = client.get_experiment_by_name("sling")
    traces = mlflow.search_traces(locations=[exp.experiment_id], return_type="list")
    assert len(traces) == 6  # a question and an answer per paragraph, each call one trace
    usage = [t.info.token_usage for t in traces]
    assert all(u and u["input_tokens"] > 0 for u in usage), usage
    db = tmp_path / "mlflow.db"
    assert secret.encode() not in db.read_bytes()
    for f in (tmp_path / "work").rglob("*"):
        assert not f.is_file() or secret.encode() not in f.read_bytes(), f


def test_the_pipeline_key_survives_a_clock_step(tmp_path):
    """A stage finds its pipeline run by the DVC process above it. Here a real parent process whose command line
    names dvc starts a child that reads the key twice, psutil's create_time (wall clock: it moves when a VM's
    clock is stepped, as it did under a real `dvc exp run`) shifted by 32 s between the reads."""
    import subprocess
    import sys
    from pathlib import Path

    child = ("import psutil, sys; sys.path.insert(0, %r)\n"
             "from sling.tracking.runs import pipeline_run_key\n"
             "first = pipeline_run_key()\n"
             "real = psutil.Process.create_time\n"
             "psutil.Process.create_time = lambda self: real(self) + 32.0\n"
             "print(first, pipeline_run_key())\n") % str(Path(__file__).parents[1])
    fake_dvc = tmp_path / "dvc"  # a parent process named like the DVC CLI, running the stage as DVC does
    fake_dvc.write_text(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child!r}], check=True)\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "SLING_PIPELINE_RUN"}
    out = subprocess.run([sys.executable, str(fake_dvc)], capture_output=True, text=True, check=True, env=env).stdout
    first, second = out.split()
    assert first.startswith("dvc-") and first == second
