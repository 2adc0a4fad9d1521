"""MLflow: one parent run per pipeline run, one nested run per stage, tagged with the DVC experiment and stage name.

The tracking URI is `MLFLOW_TRACKING_URI` when set (an MLflow server for parallel queues), else a SQLite
file at the root of the real repository: DVC runs queued experiments in temporary copies and tells the
stage where the real repository is through DVC_ROOT, so the runs are not lost with the copy.
"""
from __future__ import annotations

import logging
import os
import re
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mlflow.entities import Metric, Param
from omegaconf import DictConfig

from sling.config import ROOT, flatten

log = logging.getLogger(__name__)
EXPERIMENT = "sling"
# MLflow 3 shows an experiment's GenAI overview unless it is marked as model development (and its UI is in its "Model
# training" mode: `landing_url` sets that too).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
PIPELINE_TAG = "sling.pipeline_run"   # the parent run's key: one per pipeline run
PARENT_ENV = "SLING_MLFLOW_PARENT"    # the parent run's id, for log_headline within the stage's process
LAST_STAGE = "report"                 # the stage that ends a pipeline run
# The runs view the landing URL opens (`landing_url`): an experiment tag the MLflow UI lists under "Views" and opens
# by `?viewStateShareKey=`; the headline columns are the parents' metrics with these endings.
VIEW_TAG, LANDING_VIEW = "mlflow.sharedViewState.", "sling-headline"
HEADLINE_ENDINGS = (".rescaled", ".token_f1_rescaled", ".grounding", ".eval_loss")


def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(os.environ.get("DVC_ROOT") or ROOT).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def start_ticks(proc) -> int:
    """When the process started, in clock ticks since boot (/proc/<pid>/stat), which no clock step moves: psutil's
    create_time adds the boot time as read now, and a VM whose clock was stepped gave one `dvc exp run` two keys 32 s
    apart, so two parent runs. Elsewhere, create_time to the second."""
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return int(proc.create_time())


def pipeline_run_key() -> str | None:
    """What identifies one pipeline run: the DVC process running the stages (a `dvc repro`, a `dvc exp run`, or one
    queued experiment's worker), by pid and start time; `SLING_PIPELINE_RUN` overrides it. None outside DVC."""
    if os.environ.get("SLING_PIPELINE_RUN"):
        return os.environ["SLING_PIPELINE_RUN"]
    import psutil

    try:
        for proc in psutil.Process().parents():
            cmd = " ".join(proc.cmdline())
            if re.search(r"(^|[/\s])dvc(\s|$)|-m dvc\b|dvc/__main__", cmd):
                return f"dvc-{proc.pid}-{start_ticks(proc)}"
    except psutil.Error:  # a parent that exits or hides its command line: no grouping, never a failure
        return None
    return None


def differing_params(cfg: DictConfig) -> dict[str, str]:
    """The flattened params whose value differs from conf/'s defaults: what makes this run an experiment."""
    from sling.config import compose

    defaults, ours = flatten(compose([])), flatten(cfg)
    return {k: v for k, v in ours.items() if defaults.get(k) != v}


def parent_run(client, experiment_id: str, cfg: DictConfig, exp_name: str) -> str | None:
    """The pipeline run's parent MLflow run, found by its key or created (named by the DVC experiment)."""
    key = pipeline_run_key()
    if key is None:
        return None
    found = client.search_runs([experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=exp_name, tags={
        PIPELINE_TAG: key, "dvc.exp_name": exp_name, "sling.kind": "pipeline", "sling.data": str(cfg.data.name),
        "sling.model": str(cfg.model.name)} | environment_tags())
    items = list(differing_params(cfg).items())
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in items[i:i + 100]])
    return run.info.run_id


def environment_tags() -> dict[str, str]:
    """Where the pipeline run computes (`sling.environment`), as `sling.env.*` tags: `sling.env.cpu.model`,
    `sling.env.cpu.flags` (comma-separated), `sling.env.versions.torch`, `sling.env.precision_auto.train`, ...; one
    `sling.env.summary` line. Tags, not params: they describe the machine, not the experiment's settings."""
    from sling.environment import run_environment, summary

    env = run_environment()
    tags = {"sling.env.summary": summary(env)}

    def walk(node, key):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}")
        else:
            tags[key] = ",".join(map(str, node)) if isinstance(node, list) else str(node)

    walk(env, "sling.env")
    return tags


@contextmanager
def stage_run(stage: str, cfg: DictConfig) -> Iterator["object"]:
    """Open an MLflow run for `stage`, nested under its pipeline run's parent, with the resolved config as params.

    The experiment is marked as model development (the MLflow UI's runs table: `landing_url`). The parent (one per `dvc
    repro`, `dvc exp run` or queued experiment) holds the params that differ from the defaults, the headline
    scores (`log_headline`) and where it ran (`sling.env.*` tags: `environment_tags`); the report stage, last in the pipeline, marks it finished, a failing stage failed.
    With `teacher.kind=openai`, every teacher call is traced (MLflow's OpenAI autologging; the key is not logged).
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        # Artifacts beside the database, not under the working directory (a temporary copy in queues).
        root = Path(os.environ.get("DVC_ROOT") or ROOT).resolve()
        mlflow.create_experiment(EXPERIMENT, artifact_location=(root / "mlartifacts").as_uri(),
                                 tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    elif experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(EXPERIMENT)
    exp_name = os.environ.get("DVC_EXP_NAME", "workspace")
    client = mlflow.MlflowClient()
    parent = parent_run(client, experiment.experiment_id, cfg, exp_name)
    os.environ[PARENT_ENV] = parent or ""
    if cfg.teacher.kind == "openai" and stage in ("synthesize", "benchmark", "answer_reference"):
        import mlflow.openai

        mlflow.openai.autolog()
    try:
        with mlflow.start_run(run_name=f"{exp_name}/{stage}", parent_run_id=parent) as run:
            mlflow.set_tags({"dvc.exp_name": exp_name, "dvc.stage": os.environ.get("DVC_STAGE", stage),
                             "sling.stage": stage, "sling.data": str(cfg.data.name), "sling.model": str(cfg.model.name)})
            params = flatten(cfg)
            items = list(params.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i:i + 100]))
            yield run
            mlflow.flush_trace_async_logging()  # every teacher call's trace is stored before the process ends
    except BaseException:
        if parent:
            client.set_terminated(parent, "FAILED")
        raise
    if parent and stage == LAST_STAGE:
        client.set_terminated(parent, "FINISHED")


def log_headline(metrics: dict, prefix: str = "") -> None:
    """Numeric leaves of `metrics` on the pipeline run's parent too, so its row compares experiments at a glance."""
    import mlflow

    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    flat = flat_metrics(metrics, prefix)
    mlflow.MlflowClient().log_batch(parent, metrics=[Metric(k, v, int(time.time() * 1000), 0) for k, v in flat.items()])


def log_dataset(path: str | os.PathLike, name: str, context: str) -> None:
    """A JSON Lines file as an MLflow dataset input of the open run: name, digest of its rows, its path as source."""
    import json

    import mlflow
    import pandas as pd

    rows = [{k: v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, sort_keys=True)
             for k, v in json.loads(line).items()} for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]
    if not rows:
        log.info("%s is empty: not logged as a dataset", path)
        return
    with warnings.catch_warnings():  # MLflow's schema hint about integer columns: these are records, not features
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(pd.DataFrame(rows), source=str(path), name=name)
        mlflow.log_input(dataset, context=context)  # the schema is inferred here too


def flat_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    flat = {}

    def walk(node, key):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}{k}.")
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            flat[key[:-1].replace("@", "_at_")] = float(node)

    walk(metrics, prefix)
    return flat


def log_metrics(metrics: dict, prefix: str = "", step: int | None = None) -> None:
    """Log every numeric leaf of a nested dict to the open run."""
    import mlflow

    flat = flat_metrics(metrics, prefix)
    if flat:
        mlflow.log_metrics(flat, step=step)


def log_artifact(path: str | os.PathLike, artifact_path: str | None = None) -> None:
    import mlflow

    p = Path(path)
    if p.is_dir():
        mlflow.log_artifacts(str(p), artifact_path=artifact_path or p.name)
    elif p.exists():
        mlflow.log_artifact(str(p), artifact_path=artifact_path)


def landing_view(client, experiment_id: str) -> str:
    """Save the runs view a person compares experiments in, as the MLflow UI saves one ("Views", then "Save view"):
    the pipeline runs alone (their stage runs filtered out), newest first, with the params that differ from the
    defaults and the headline metrics as columns (every parent's, so older runs keep theirs). Rewritten by each report
    stage, so new tasks and settings get their columns. Returns the view's key (`landing_url`)."""
    import json

    parents = client.search_runs([experiment_id], filter_string="tags.`sling.kind` = 'pipeline'", max_results=500)
    params = sorted({k for r in parents for k in r.data.params})
    metrics = sorted({k for r in parents for k in r.data.metrics if k.endswith(HEADLINE_ENDINGS)})
    columns = [f"params.`{k}`" for k in params] + [f"metrics.`{k}`" for k in metrics]
    state = {"searchFilter": "tags.`sling.kind` = 'pipeline'", "orderByKey": "attributes.start_time", "orderByAsc": False,
             "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
             "selectedColumns": columns, "runsHiddenMode": "SHOW_ALL", "groupBy": None, "viewMaximized": False,
             "runListHidden": False, "hideEmptyCharts": True, "useGroupedValuesInCharts": True}
    while len(json.dumps(state)) > 18000:  # an experiment tag holds 20,000 characters: the last columns go first
        state["selectedColumns"] = state["selectedColumns"][:-1]
    now = int(time.time() * 1000)
    # the envelope the UI's saved views use: a name, times, and the view's state as a JSON string
    client.set_experiment_tag(experiment_id, VIEW_TAG + LANDING_VIEW, json.dumps(
        {"name": "Pipeline runs: headline scores", "createdAt": now, "updatedAt": now, "state": json.dumps(state)}))
    return LANDING_VIEW


def landing_url(experiment_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """Where the MLflow UI opens on the runs table with the landing view: `workflowType=machine_learning`, since MLflow
    3's UI starts in its GenAI mode (Traces, Overview) whatever the experiment's kind tag says."""
    return (f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={LANDING_VIEW}")


def refresh_landing_view() -> None:
    """The report stage's call, in its open run: the landing view with this pipeline run's columns, and its URL in the
    log. A tracking server that refuses is a warning: the view is a convenience, the runs are logged."""
    import mlflow
    from mlflow.exceptions import MlflowException

    run = mlflow.active_run()
    if run is None:
        return
    try:
        landing_view(mlflow.MlflowClient(), run.info.experiment_id)
    except MlflowException as e:
        log.warning("the MLflow landing view was not saved (%s)", e)
        return
    log.info("compare pipeline runs in the MLflow UI (`mlflow ui`): %s", landing_url(run.info.experiment_id))


def step_logger(stage: str):
    """A Trainer callback that logs each step's losses to the open MLflow run (x = step, as in plots/)."""
    from transformers import TrainerCallback

    class MLflowSteps(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            log_metrics({k: v for k, v in (logs or {}).items() if k in ("loss", "eval_loss", "learning_rate", "grad_norm")},
                        prefix=f"{stage}.", step=state.global_step)

    return MLflowSteps()
