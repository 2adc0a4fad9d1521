"""The Model Registry: a tiny student trained here is registered by `sling.tracking.registry`, loaded back through MLflow's own
API (`models:/sling-domain/1`) from a real SQLite backend, and answers a question as it learned to.

The base is the 2-layer model of tests/test_train.py; both adapters are trained by the real `sling.models.training.train` on
its colour questions, so the loaded model answers in the learned form ("It is ... .") only with the registered adapters
merged in; the same version loaded with no adapters answers otherwise.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.test_train import config, dataset, tiny_model

HEADLINE = {"single": {"questions": 8, "domain": {"rescaled": 0.25, "token_f1_rescaled": 0.125, "grounding": 0.5}},
            "adapters": {"domain": {"train_loss": 0.5, "eval_loss": 0.75}}}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A tiny base and its general and domain adapters, trained on the colour questions."""
    from omegaconf import OmegaConf

    from sling.config import compose
    from sling.models.training import train

    root = tmp_path_factory.mktemp("student")
    base = tiny_model(root / "base")
    data = dataset(root / "data")
    cfg = config(lambda *o: compose(list(o)), "train.general_max_steps=40", "train.domain_max_steps=10")
    # the pyfunc model asks in the prompt format the tiny model learned, with short answers
    cfg.rag.closed_book_template = "### Instruction: {question} ### Response:"
    cfg.rag.max_new_tokens = 4
    cfg.rag.repetition_penalty = 1.0
    adapters = {"general": str(root / "general"), "domain": str(root / "domain")}
    for stage in ("general", "domain"):
        train(cfg, stage, out_dir=adapters[stage], checkpoint_dir=root / f"ckpt_{stage}", base_dir=base,
              data_dir=data, adapter_dirs=adapters)
    return OmegaConf.create(OmegaConf.to_container(cfg)), base, adapters


def test_registered_student_loads_by_the_mlflow_api_and_answers(student, tmp_path, monkeypatch):
    import mlflow

    from sling.tracking.registry import MODEL_NAME, register_student

    cfg, base, adapters = student
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))  # no models/merged here: one version only
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry-test")
    with mlflow.start_run() as parent:
        pass
    with mlflow.start_run(run_name="report"):
        versions = register_student(cfg, HEADLINE, adapter_dirs=adapters, base_dir=base,
                                    parent_run_id=parent.info.run_id)
    assert [(v.name, v.version) for v in versions] == [(MODEL_NAME, 1)]

    client = mlflow.MlflowClient()
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.run_id == parent.info.run_id  # linked to the pipeline run's parent
    assert version.tags["sling.base.name"] == cfg.model.name and version.tags["sling.base.path"] == str(base)
    assert version.tags["score.single.domain.rescaled"] == "0.25"
    assert version.tags["score.adapters.domain.eval_loss"] == "0.75"
    assert len(version.tags["sling.dataset.domain.sha256"]) == 64 and len(version.tags["sling.base.sha256"]) == 64
    # the adapters are in MLflow, the base is not
    files = mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/1", dst_path=str(tmp_path / "copy"))
    weights = list(Path(files).rglob("*.safetensors"))
    assert sorted(p.parent.name for p in weights) == ["domain", "general"]

    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    answers = model.predict(pd.DataFrame({"question": ["What colour is the sky ?", "What colour is the snow ?"]}))
    assert all(isinstance(a, str) and a for a in answers), answers
    assert all(a.startswith("It is") for a in answers), answers  # the answer form it learned
    # the same version with the base alone (a deployment's override of the model's config): it answers otherwise
    bare = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/latest", model_config={"adapters": []})
    assert bare.predict(pd.DataFrame({"question": ["What colour is the sky ?"]}))[0] != answers[0]


def test_a_pipeline_run_without_its_adapter_is_an_error(student, tmp_path, monkeypatch):
    from sling.errors import InputError
    from sling.tracking.registry import register_student

    cfg, base, adapters = student
    with pytest.raises(InputError, match="adapter 'domain' not found"):
        register_student(cfg, HEADLINE, adapter_dirs={**adapters, "domain": str(tmp_path / "missing")}, base_dir=base,
                         parent_run_id="0" * 32)


def test_an_unreachable_registry_is_a_warning_not_a_failed_report(student, monkeypatch, caplog):
    import mlflow

    from sling.tracking import registry

    cfg, base, adapters = student
    monkeypatch.setenv("SLING_MLFLOW_PARENT", "0" * 32)
    monkeypatch.setattr(registry, "register_student", lambda *a, **k: (_ for _ in ()).throw(
        mlflow.exceptions.MlflowException("registry unavailable")))
    assert registry.register(cfg, HEADLINE) == []
    assert "not registered" in caplog.text


def test_landing_view_lists_the_pipeline_runs_with_their_headline_columns(tmp_path):
    """The saved view the landing URL opens, in the envelope MLflow 3.17's UI reads (name, times, state as JSON)."""
    import json

    import mlflow

    from sling.tracking.runs import LANDING_VIEW, VIEW_TAG, landing_url, landing_view

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("sling")
    run = client.create_run(exp, tags={"sling.kind": "pipeline"})
    client.log_param(run.info.run_id, "lora.r", "8")
    for key in ("single.domain.rescaled", "single.domain.cosine", "domain.eval_loss"):
        client.log_metric(run.info.run_id, key, 0.5)
    assert landing_view(client, exp) == LANDING_VIEW
    envelope = json.loads(client.get_experiment(exp).tags[VIEW_TAG + LANDING_VIEW])
    state = json.loads(envelope["state"])
    assert state["searchFilter"] == "tags.`sling.kind` = 'pipeline'"
    assert state["selectedColumns"] == ["params.`lora.r`", "metrics.`domain.eval_loss`", "metrics.`single.domain.rescaled`"]
    assert landing_url(exp).endswith(f"/#/experiments/{exp}/runs?workflowType=machine_learning&viewStateShareKey={LANDING_VIEW}")
