"""MLflow: one run per stage, tagged with the DVC experiment and stage name.

The tracking URI is `MLFLOW_TRACKING_URI` when set (an MLflow server for parallel queues), else a SQLite
file at the root of the real repository: DVC runs queued experiments in temporary copies and tells the
stage where the real repository is through DVC_ROOT, so the runs are not lost with the copy.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig

from pipeline.config import ROOT, flatten

log = logging.getLogger(__name__)
EXPERIMENT = "sling"


def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(os.environ.get("DVC_ROOT") or ROOT).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


@contextmanager
def stage_run(stage: str, cfg: DictConfig) -> Iterator["object"]:
    """Open an MLflow run for `stage` with the flattened resolved config as params."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        # Artifacts beside the database, not under the working directory (a temporary copy in queues).
        root = Path(os.environ.get("DVC_ROOT") or ROOT).resolve()
        mlflow.create_experiment(EXPERIMENT, artifact_location=(root / "mlartifacts").as_uri())
    mlflow.set_experiment(EXPERIMENT)
    exp_name = os.environ.get("DVC_EXP_NAME", "workspace")
    with mlflow.start_run(run_name=f"{exp_name}/{stage}") as run:
        mlflow.set_tags({"dvc.exp_name": exp_name, "dvc.stage": os.environ.get("DVC_STAGE", stage),
                         "sling.stage": stage, "sling.data": str(cfg.data.name), "sling.model": str(cfg.model.name)})
        params = flatten(cfg)
        items = list(params.items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i:i + 100]))
        yield run


def log_metrics(metrics: dict, prefix: str = "", step: int | None = None) -> None:
    """Log every numeric leaf of a nested dict."""
    import mlflow

    flat = {}

    def walk(node, key):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}{k}.")
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            flat[key[:-1].replace("@", "_at_")] = float(node)

    walk(metrics, prefix)
    if flat:
        mlflow.log_metrics(flat, step=step)


def log_artifact(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    import mlflow

    p = Path(path)
    if p.is_dir():
        mlflow.log_artifacts(str(p), artifact_path=artifact_path or p.name)
    elif p.exists():
        mlflow.log_artifact(str(p), artifact_path=artifact_path)
