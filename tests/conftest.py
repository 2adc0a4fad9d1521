"""Shared test setup: offline hub, a throwaway MLflow database, and small helpers to build configs."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture(autouse=True)
def _mlflow_tmp(tmp_path_factory, monkeypatch):
    """Every test logs to its own SQLite MLflow backend, never to the repository's mlflow.db."""
    if "MLFLOW_TRACKING_URI" not in os.environ or os.environ.get("SLING_TEST_MLFLOW_SET"):
        db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        monkeypatch.setenv("SLING_TEST_MLFLOW_SET", "1")


@pytest.fixture
def cfg_factory():
    """Compose conf/ with overrides, as `dvc exp run -S` would."""
    from pipeline.config import compose

    return lambda *overrides: compose(list(overrides))


def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory) -> Path:
    """The base snapshot: the repository's when `dvc repro` made one, else the snapshot_model stage run here (a
    fresh clone in CI has models/pretrained from scripts/install.sh, not models/base)."""
    if (ROOT / "models/base/model.safetensors").exists():
        return ROOT / "models/base"
    from pipeline import snapshot_model

    work = tmp_path_factory.mktemp("snapshot")
    (work / "models").mkdir()
    (work / "models/pretrained").symlink_to(ROOT / "models/pretrained", target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLING_WORKDIR", str(work))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
        snapshot_model.main(["model.dtype=float32"])
    return work / "models/base"
