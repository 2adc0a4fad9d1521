"""Configuration: every shipped config composes and validates; bad values fail early, naming the key."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from sling.config import CONF_DIR, PARAMS, compose, flatten, load_config, validate
from sling.errors import ConfigError

# experiment: global presets; documents_run: what data=documents sets outside its group, pulled in by it, never chosen
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("experiment", "documents_run"))


def test_data_documents_runs_at_auto_precision_with_several_candidates_and_the_default_profile_does_not():
    docs = compose(["data=documents", "data.corpus_dir=/tmp/papers"])
    assert (docs.teacher.dtype, docs.train.precision, docs.rag.dtype) == ("auto", "auto", "auto")
    assert docs.synth.samples_per_paragraph > 1 and docs.synth.reference == "extractive"
    assert compose(["data=documents", "data.corpus_dir=/tmp/papers", "teacher.dtype=float32"]).teacher.dtype == "float32"
    default = compose([])
    assert (default.teacher.dtype, default.train.precision, default.rag.dtype) == ("float32", "fp32", "float32")
    assert default.synth.samples_per_paragraph == 1 and default.synth.reference == "teacher"


@pytest.mark.parametrize("group,option", [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))])
def test_every_group_option_composes_and_validates(group, option):
    required = {"documents": ["data.corpus_dir=corpus/sample/documents"]}.get(option, [])
    cfg = compose([f"{group}={option}", *required])
    validate(cfg)
    assert OmegaConf.select(cfg, group) is not None


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_validates(experiment):
    cfg = compose([f"experiment={experiment}"])
    validate(cfg)


def test_paper_experiment_carries_the_papers_recipe():
    cfg = compose(["experiment=paper"])
    assert cfg.model.hub_id == "microsoft/phi-1_5" and cfg.model.quantization == "4bit"
    assert list(cfg.model.target_modules) == ["q_proj", "k_proj", "v_proj", "dense"]
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (16, 16, 0.05)
    assert (cfg.train.lr, cfg.train.warmup_steps, cfg.train.batch_size, cfg.train.grad_accum) == (4e-4, 100, 4, 8)
    assert (cfg.train.max_length, cfg.train.loss_on, cfg.train.general_max_steps) == (500, "all", 1000)
    assert (cfg.rag.chunk_tokens, cfg.rag.chunk_overlap, cfg.rag.top_k, cfg.rag.max_new_tokens) == (300, 50, 3, 150)


def test_committed_params_yaml_is_the_default_composition():
    """`dvc repro` on a fresh clone runs the committed params.yaml: it must be conf/'s defaults."""
    assert OmegaConf.to_container(OmegaConf.load(PARAMS)) == OmegaConf.to_container(compose([]), resolve=True)


@pytest.mark.parametrize("override,key", [
    ("lora.r=0", "lora.r"), ("lora.dropout=1.5", "lora.dropout"), ("train.lr=-1", "train.lr"),
    ("train.loss_on=prompt", "train.loss_on"), ("model.quantization=8bit", "model.quantization"),
    ("rag.chunk_overlap=400", "rag.chunk_overlap"), ("teacher.concurrency=0", "teacher.concurrency"),
    ("ingest.on_error=ignore", "ingest.on_error"), ("train.batch_size=two", "train.batch_size"),
])
def test_bad_value_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config([override])


def test_bad_value_stops_a_stage_before_any_model_loads():
    proc = subprocess.run([sys.executable, "-m", "pipeline.train", "general", "lora.r=0"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "lora.r must be a positive integer, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[0].startswith("error: ")  # one clear line
    assert "Loading weights" not in proc.stderr and "trainable" not in proc.stderr


def test_flatten_drops_secrets_and_keeps_the_env_var_name():
    cfg = compose(["teacher=openai"])
    OmegaConf.update(cfg, "teacher.api_key", "sk-should-never-appear", force_add=True)
    flat = flatten(cfg)
    assert "teacher.api_key" not in flat and "sk-should-never-appear" not in str(flat)
    assert flat["teacher.api_key_env"] == "OPENAI_API_KEY"
    assert flat["lora.r"] == "16"
    # counts of tokens are settings, not secrets: they reach MLflow (and the parent run's changed params)
    assert flat["rag.chunk_tokens"] == str(cfg.rag.chunk_tokens) and "rag.max_new_tokens" in flat
    for name in ("hf_token", "token", "secret", "password", "openai_api_key", "apikey"):
        OmegaConf.update(cfg, f"teacher.{name}", "hidden-value", force_add=True)
    assert "hidden-value" not in str(flatten(cfg))


def test_documents_profile_names_the_folder_it_needs():
    with pytest.raises(ConfigError, match=r"data.corpus_dir must be set .*-S data.corpus_dir=/path/to/papers"):
        validate(compose(["data=documents"]))
    with pytest.raises(ConfigError, match=r"data.split.benchmark_fraction must be a number in \(0, 1\)"):
        validate(compose(["data=documents", "data.corpus_dir=x", "data.split.benchmark_fraction=1"]))
    with pytest.raises(ConfigError, match=r"benchmark.joint_task and benchmark.multihop.task are both 'all'"):
        validate(compose(["data=documents", "data.corpus_dir=x", "benchmark.multihop.task=all"]))
    with pytest.raises(ConfigError, match=r"data.tasks.bad name: a task name may hold"):
        validate(compose(["+data.tasks={bad name:{documents:x,questions:y}}"]))


def test_a_missing_input_is_one_line_that_names_the_fix(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline.benchmark", "data=documents", f"data.corpus_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "SLING_WORKDIR": str(tmp_path)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "lists no ingested document: run the ingest stage first" in proc.stderr


def test_extra_seeds_become_one_dvc_stage_per_adapter_and_seed(tmp_path):
    """dvc.yaml's foreach stages: none without extra seeds, two per extra seed, each writing its own adapter."""
    import shutil
    from pathlib import Path

    from sling.config import ROOT

    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True)
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")

    def stages(*overrides: str) -> list[str]:
        OmegaConf.save(compose(list(overrides)), tmp_path / "params.yaml")
        return subprocess.run([dvc, "stage", "list", "--name-only"], cwd=tmp_path, capture_output=True, text=True,
                              check=True).stdout.split()

    assert not [s for s in stages() if "seed" in s]
    seeded = [s for s in stages("train.extra_seeds=[3,5]") if "seed" in s]
    assert seeded == ["train_general_seed@3", "train_general_seed@5", "train_domain_seed@3", "train_domain_seed@5"]
    with pytest.raises(ConfigError, match="train.extra_seeds holds seed"):
        validate(compose(["train.extra_seeds=[42]"]))
    with pytest.raises(ConfigError, match="distinct non-negative"):
        validate(compose(["train.extra_seeds=[3,3]"]))


@pytest.mark.parametrize("overrides, message", [
    (["train.num_processes=2"], "train.num_processes=2 needs train.launcher=accelerate"),
    (["train.distributed=fsdp"], "train.distributed and train.accelerate_config need train.launcher=accelerate"),
    (["train.launcher=accelerate", "train.num_processes=3"],
     r"train.batch_size \(4\) must divide by train.num_processes \(3\)"),
    (["train.launcher=accelerate", "train.num_processes=2", "train.distributed=fsdp", "model.quantization=4bit"],
     "train.distributed=fsdp does not shard a 4-bit model"),
    (["train.launcher=accelerate", "train.accelerate_config=conf/nowhere.yaml"], "nowhere.yaml does not exist"),
])
def test_launch_settings_that_cannot_run_are_errors_naming_the_keys(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(overrides))


def test_a_batch_that_splits_over_the_processes_is_accepted():
    validate(compose(["train.launcher=accelerate", "train.num_processes=2"]))
    validate(compose(["train.launcher=accelerate", "train.num_processes=4"]))
