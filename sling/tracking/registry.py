"""The tuned student in the MLflow Model Registry: each pipeline run's domain variant as a version of `sling-domain`.

The report stage, last in the pipeline, calls `register` at its end, inside its MLflow run: it logs the student as an
MLflow pyfunc model (`sling/tracking/student_model.py`) whose artifacts are the general and domain LoRA adapters (the domain
variant stacks both, `sling.models.loading.VARIANTS`), and registers it as a new version of `MODEL_NAME`, linked to the
pipeline run's parent MLflow run. The version's tags carry

- the base model: its name, hub id and revision (`sling.base.*`), the snapshot's directory and its sha256 as the
  adapter's provenance recorded it when training;
- the datasets' lineage: the sha256 of data/datasets/domain and data/datasets/general from the adapters' provenance,
  and the MLflow datasets (name and digest) the training stages of this pipeline run logged (`sling.dataset.*`);
- the run's headline scores, metrics/report.json flattened (`score.<task>.<variant>.rescaled`, ...).

The base model (about 500 MB) is not copied into MLflow on every run: the model's config names the snapshot's
directory, and a deployment points it at its own copy, or at the hub id of conf/model/<name>.yaml, when loading:
`mlflow.pyfunc.load_model("models:/sling-domain/3", model_config={"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"})`
(the packaged SmolLM2 snapshot is dequantized from a GGUF file, so the hub's weights answer close to, not exactly as,
the snapshot the adapters trained on; `dvc pull models/base` gives the same bytes). With `train.merge_export=true` the
merged export (models/merged/domain) is registered too, as a version of `MERGED_NAME` whose config names that directory.

The export stage (pipeline/export.py) registers each exported form that passed its gate with `register_export`: one
version of `sling-<variant>-export-<form>` per run (the merged safetensors and each GGUF type), beside the adapter's
`sling-domain` version and with its tags (base, datasets' lineage, the pipeline run), plus the gate's figures
(`export.kl`, `export.top1`, per task `export.<task>.rescaled_difference` with its interval and question count). Its
model is the same pyfunc with no adapters, whose config names the form's directory in models/export/ (and its GGUF
file, read through transformers' GGUF loader): the weights are not copied into MLflow.

A pipeline run that lacks its adapters is an error (they are upstream outputs of the same run); a report run by hand
on answers made elsewhere (scripts/study.py) has no adapters and no pipeline run, and registers nothing. A registry
that cannot be reached or refuses is a warning: the report is written and DVC's outputs stand.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from omegaconf import DictConfig

from sling.config import resolve_path
from sling.errors import InputError
from sling.io import read_json
from sling.models.loading import ADAPTER_DIRS, VARIANTS
from sling.paths import BASE_DIR, MODEL_PROVENANCE
from sling.paths import merged_dir as default_merged_dir
from sling.schema import Data, Model, Rag
from sling.tracking.runs import PARENT_ENV, flat_metrics

log = logging.getLogger(__name__)

MODEL_NAME = "sling-domain"          # the registered model: base + general + domain adapters
MERGED_NAME = "sling-domain-merged"  # the merged export, when train.merge_export made one
VARIANT = "domain"
STUDENT_CODE = Path(__file__).with_name("student_model.py")


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "question"), ColSpec("string", "context", required=False)]),
                          outputs=Schema([ColSpec("string")]),
                          params=ParamSchema([ParamSpec("max_new_tokens", "long", None)]))


def requirements() -> list[str]:
    """Pinned to this environment: given, not inferred (MLflow would load the model in a subprocess to infer them)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "torch", "transformers", "peft", "pandas")]


def model_config(model: Model, rag: Rag, base: str) -> dict:
    return {"base_model": base, "base_name": str(model.name), "base_hub_id": str(model.hub_id),
            "base_revision": str(model.revision), "adapters": list(VARIANTS[VARIANT]),
            "prompt_template": str(rag.prompt_template), "closed_book_template": str(rag.closed_book_template),
            "max_new_tokens": int(rag.max_new_tokens), "repetition_penalty": float(rag.repetition_penalty)}


def training_datasets(client, parent: str | None) -> dict[str, str]:
    """The MLflow datasets (name -> digest) the training stages of this pipeline run logged; none when DVC took the
    adapters from its cache (the provenance hashes still say which data they were trained on)."""
    if not parent:
        return {}
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", max_results=200)
    return {f"sling.dataset.mlflow.{d.dataset.name}": d.dataset.digest for r in runs
            if r.data.tags.get("sling.stage", "").startswith("train_") for d in r.inputs.dataset_inputs}


def version_tags(model: Model, data: Data, headline: dict, adapters: dict[str, Path], base: str, parent: str | None,
                 datasets: dict[str, str], variant: str = VARIANT) -> dict[str, str]:
    prov = {a: read_json(d / MODEL_PROVENANCE) if (d / MODEL_PROVENANCE).exists() else {}
            for a, d in adapters.items()}
    inputs = prov.get(variant, {}).get("inputs", {})
    tags = {"sling.base.name": str(model.name), "sling.base.hub_id": str(model.hub_id),
            "sling.base.revision": str(model.revision), "sling.base.path": base,
            "sling.base.sha256": inputs.get("base", "unknown"), "sling.variant": variant,
            "sling.adapters": ",".join(adapters), "sling.data": str(data.name),
            "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "workspace"), "sling.parent_run_id": parent or ""}
    for name, p in prov.items():
        if "data" in p.get("inputs", {}):
            tags[f"sling.dataset.{name}.sha256"] = p["inputs"]["data"]
    tags |= datasets
    tags |= {f"score.{k}": f"{v:.6g}" for k, v in flat_metrics(headline).items()}
    return tags


def description(model: Model, data: Data, headline: dict, base: str) -> str:
    scores = ", ".join(f"{task} {node[VARIANT]['rescaled']:.3f}" for task, node in headline.items()
                       if isinstance(node, dict) and isinstance(node.get(VARIANT), dict)
                       and "rescaled" in node[VARIANT])
    return (f"{model.name} with the general and domain LoRA adapters merged in order (variant '{VARIANT}'), "
            f"data={data.name}, DVC experiment {os.environ.get('DVC_EXP_NAME', 'workspace')}. The base model is not "
            f"in MLflow: it is read from {base} (model_config base_model; pass model_config={{'base_model': "
            f"'{model.hub_id}'}} or another copy when loading). Rescaled cosine per task: {scores or 'not scored'}.")


def register_student(cfg: DictConfig, headline: dict, adapter_dirs: dict[str, str] | None = None,
                     base_dir: str | os.PathLike | None = None, merged_dir: str | os.PathLike | None = None,
                     parent_run_id: str | None = None) -> list:
    """Log the domain variant (and its merged export, when there is one) as a pyfunc model in the active MLflow run and
    register it; returns the model versions made. Raises InputError when an adapter is missing."""
    import mlflow

    dirs = {**ADAPTER_DIRS, **(adapter_dirs or {})}
    adapters = {a: resolve_path(dirs[a]) for a in VARIANTS[VARIANT]}
    for name, path in adapters.items():
        if not (path / "adapter_config.json").exists():
            raise InputError(f"adapter '{name}' not found at {path}: nothing to register as {MODEL_NAME} "
                             f"(`dvc repro train_{name}` makes it)")
    base = str(Path(base_dir).resolve() if base_dir else base_location())
    client = mlflow.MlflowClient()
    tags = version_tags(cfg.model, cfg.data, headline, adapters, base, parent_run_id,
                        training_datasets(client, parent_run_id))
    text = description(cfg.model, cfg.data, headline, base)
    active = mlflow.active_run()
    link = parent_run_id or (active.info.run_id if active else None)
    versions = []
    # MLflow suggests type hints and an input example: the signature is given, and an example would load the model
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.pyfunc")
    info = mlflow.pyfunc.log_model(name="student", python_model=str(STUDENT_CODE),
                                   artifacts={a: str(p) for a, p in adapters.items()},
                                   model_config=model_config(cfg.model, cfg.rag, base), signature=signature(),
                                   pip_requirements=requirements())
    versions.append(new_version(client, MODEL_NAME, info, link, tags, text))
    merged = Path(merged_dir) if merged_dir else resolve_path(default_merged_dir(VARIANT))
    if cfg.train.merge_export and (merged / "config.json").exists():
        info = mlflow.pyfunc.log_model(name="student_merged", python_model=str(STUDENT_CODE),
                                       model_config=model_config(cfg.model, cfg.rag, str(merged.resolve()))
                                       | {"adapters": []},
                                       signature=signature(), pip_requirements=requirements())
        versions.append(new_version(client, MERGED_NAME, info, link, tags | {"sling.base.path": str(merged.resolve()),
                                                                              "sling.merged_from": base}, text))
    return versions


def new_version(client, name: str, info, run_id: str | None, tags: dict[str, str], text: str,
                about: str = "one version per pipeline run, from its report stage"):
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"sling's tuned student ({name}): {about} "
                                                         "(sling/tracking/registry.py).")
    version = client.create_model_version(name, source=info.model_uri, run_id=run_id, tags=tags, description=text,
                                          model_id=info.model_id)
    log.info("registered %s version %s (models:/%s/%s)", name, version.version, name, version.version)
    return version


def base_location() -> Path:
    """The base snapshot's directory in the real repository: a queued experiment runs in a temporary copy that DVC
    deletes afterwards, and DVC_ROOT names the repository it came from."""
    root = os.environ.get("DVC_ROOT")
    if root and (Path(root) / BASE_DIR / "config.json").exists():
        return (Path(root) / BASE_DIR).resolve()
    return resolve_path(BASE_DIR).resolve()


def register(cfg: DictConfig, headline: dict) -> list:
    """The report stage's call: register this pipeline run's student; a registry failure is a warning."""
    from mlflow.exceptions import MlflowException

    parent = os.environ.get(PARENT_ENV) or None
    if parent is None and not all((resolve_path(ADAPTER_DIRS[a]) / "adapter_config.json").exists()
                                  for a in VARIANTS[VARIANT]):
        log.info("no pipeline run and no adapters here (a report of answers made elsewhere): nothing to register")
        return []
    try:
        return register_student(cfg, headline, parent_run_id=parent)
    except (MlflowException, OSError) as e:  # a server that is down or refuses; a missing adapter raised above
        log.warning("the student was not registered in the MLflow Model Registry (%s); the report stands", e)
        return []


def export_name(variant: str, form: str) -> str:
    return f"sling-{variant}-export-{form}"


def gate_tags(figures) -> dict[str, str]:
    """One form's gate figures (sling.models.export.Figures) as registry tags."""
    tags = {"export.kl": f"{figures.kl:.6g}", "export.top1": f"{figures.top1:.4g}",
            "export.positions": str(figures.positions), "export.probes": str(figures.probes)}
    for d in figures.benchmark:
        key = f"export.{d.task}.{d.metric}_difference"
        tags |= {key: f"{d.mean:+.4f}", f"{key}.ci_low": f"{d.ci[0]:+.4f}", f"{key}.ci_high": f"{d.ci[1]:+.4f}",
                 f"{key}.questions": str(d.questions)}
    return tags


def register_export(model: Model, data: Data, rag: Rag, variant: str, forms: dict[str, tuple[Path, str | None]], figures: dict,
                    loader: str, adapter_dirs: dict[str, str] | None = None) -> list:
    """The export stage's call, once its gate passed: each form (its directory and GGUF file, None for the merged
    safetensors) logged as a pyfunc model naming it, in the active MLflow run, and registered as a version of
    `export_name` with the adapter version's tags and the gate's figures (`gate_tags`). A registry failure is a
    warning: the export stands."""
    import mlflow
    from mlflow.exceptions import MlflowException

    parent = os.environ.get(PARENT_ENV) or None
    dirs = {**ADAPTER_DIRS, **(adapter_dirs or {})}
    adapters = {a: resolve_path(dirs[a]) for a in VARIANTS[variant]}
    base = str(base_location())
    active = mlflow.active_run()
    link = parent or (active.info.run_id if active else None)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.pyfunc")
    # each form's model_config is in its logged model; MLflow also copies it into the run's params, where a second
    # form's base_model may not overwrite the first's, and says so in a warning
    logging.getLogger("mlflow.models.model").setLevel(logging.ERROR)
    versions = []
    try:
        client = mlflow.MlflowClient()
        tags = version_tags(model, data, {}, adapters, base, parent, training_datasets(client, parent), variant)
        for form, (path, file) in forms.items():
            where = str(Path(path).resolve() / (file or ""))
            info = mlflow.pyfunc.log_model(name=f"export_{form}", python_model=str(STUDENT_CODE),
                                           model_config=model_config(model, rag, str(Path(path).resolve()))
                                           | {"adapters": []} | ({"gguf_file": file} if file else {}),
                                           signature=signature(), pip_requirements=requirements())
            text = (f"The {form} export of variant '{variant}' ({model.name} with adapters "
                    f"{', '.join(VARIANTS[variant])} merged) at {where}, not copied into MLflow. Its gate figures "
                    f"against the adapter are the export.* tags, read through {loader}.")
            versions.append(new_version(client, export_name(variant, form), info, link,
                                        tags | {"sling.base.path": where, "sling.merged_from": base,
                                                "export.form": form} | gate_tags(figures[form]), text,
                                        "one version per export stage run whose gate passed"))
    except (MlflowException, OSError) as e:
        log.warning("the export was not registered in the MLflow Model Registry (%s); the export stands", e)
    return versions
