"""Shared test setup: offline hub, a throwaway MLflow database, and small helpers to build configs."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("DO_NOT_TRACK", "true")


_MLFLOW_TEMPLATE: list[Path] = []


def mlflow_db(dest: Path) -> str:
    """A real, empty MLflow SQLite backend at `dest`, as a tracking URI: a copy of one created once per session, since
    creating MLflow's tables costs seconds, and most tests open one."""
    if not _MLFLOW_TEMPLATE:
        import tempfile

        import mlflow

        template = Path(tempfile.mkdtemp(prefix="sling-mlflow-")) / "template.db"
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # creates the tables
        _MLFLOW_TEMPLATE.append(template)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MLFLOW_TEMPLATE[0], dest)
    return f"sqlite:///{dest}"


@pytest.fixture(autouse=True)
def _mlflow_tmp(tmp_path_factory, monkeypatch):
    """Every test logs to its own SQLite MLflow backend, never to the repository's mlflow.db."""
    if "MLFLOW_TRACKING_URI" not in os.environ or os.environ.get("SLING_TEST_MLFLOW_SET"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_db(tmp_path_factory.mktemp("mlflow") / "mlflow.db"))
        monkeypatch.setenv("SLING_TEST_MLFLOW_SET", "1")


@pytest.fixture
def cfg_factory():
    """Compose conf/ with overrides, as `dvc exp run -S` would."""
    from sling.config import compose

    return lambda *overrides: compose(list(overrides))


def python() -> str:
    return sys.executable


BIN = Path(sys.executable).parent  # the running interpreter's bin folder (.venv/bin): its `python`, `dvc`, `accelerate`


def venv_env(env: dict | None = None) -> dict:
    """os.environ with the running interpreter's bin folder first on PATH, then `env`: what a subprocess needs to run a
    command line as DVC runs it (`python -m pipeline.<stage>` through /bin/sh, `dvc ...`) with the interpreter that
    runs the tests. README command 2 runs `.venv/bin/python -m pytest` in a shell without the venv activated, where
    PATH's `python` is the system one or none (issue 32): every test that starts `python` or `dvc` by name uses this."""
    path = os.pathsep.join(p for p in (str(BIN), os.environ.get("PATH", "")) if p)
    return {**os.environ, "PATH": path, **(env or {})}


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
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_db(work / "mlflow.db"))
        snapshot_model.main(["model.dtype=float32"])
    return work / "models/base"
