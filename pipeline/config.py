"""Loading and validating the resolved configuration.

Under DVC a stage reads `params.yaml` (DVC composes `conf/` into it on `dvc exp run`). By hand, a stage
takes Hydra overrides, e.g. `python -m pipeline.train general lora.r=8 model=phi-1_5`, and then composes
`conf/` itself. Either way the result is validated before any model or data is loaded.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
PARAMS = ROOT / "params.yaml"


class UserError(Exception):
    """A mistake in the user's input or settings, not in the code: its message says what to fix. A stage run from
    the command line reports it in one line, without a traceback (pipeline.cli)."""


class InputError(UserError, ValueError):
    """An input file (documents, question or instruction files, a stage's data) cannot be used as it is; the
    message names the file and what is wrong with it."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message names the key and how to fix it."""


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose `conf/` with Hydra overrides, as `dvc exp run -S` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []))


def load_config(argv: list[str] | None = None) -> DictConfig:
    """`params.yaml` when no overrides are given, else `conf/` composed with them; validated."""
    overrides = [a for a in (sys.argv[1:] if argv is None else argv) if "=" in a or a.startswith("~")]
    if overrides:
        cfg = compose(overrides)
    else:
        if not PARAMS.exists():
            raise ConfigError(f"{PARAMS} is missing: run `python -m pipeline.compose` to write it from conf/")
        cfg = OmegaConf.load(PARAMS)
    validate(cfg)
    return cfg


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _non_negative_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _positive_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _fraction(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1


def _one_of(*choices: str) -> Callable[[Any], bool]:
    check = lambda v: v in choices  # noqa: E731
    check.__doc__ = "one of " + ", ".join(choices)
    return check


def _optional_one_of(*choices: str) -> Callable[[Any], bool]:
    check = lambda v: v is None or v in choices  # noqa: E731
    check.__doc__ = "null or one of " + ", ".join(choices)
    return check


def _optional_share(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1)


def _optional_positive_int(v: Any) -> bool:
    return v is None or _positive_int(v)


def _optional_positive_number(v: Any) -> bool:
    return v is None or _positive_number(v)


def _optional_non_negative_int(v: Any) -> bool:
    return v is None or _non_negative_int(v)


def _boolean(v: Any) -> bool:
    return isinstance(v, bool)


def _auto_or_boolean(v: Any) -> bool:
    return v == "auto" or isinstance(v, bool)


_boolean.__doc__ = "true or false"
_auto_or_boolean.__doc__ = "auto, true or false"
_optional_positive_int.__doc__ = "null or a positive integer"
_optional_share.__doc__ = "null or a number in [0, 1]"
_optional_non_negative_int.__doc__ = "null or a non-negative integer"
_optional_positive_number.__doc__ = "null or a positive number"
_positive_int.__doc__ = "a positive integer"
_non_negative_int.__doc__ = "a non-negative integer"
_positive_number.__doc__ = "a positive number"
_fraction.__doc__ = "a number in [0, 1)"

RULES: dict[str, Callable[[Any], bool]] = {
    "seed": _non_negative_int,
    "model.source": _one_of("package", "hub", "path"),
    "model.dtype": _one_of("float32", "float16", "bfloat16"),
    "model.quantization": _one_of("none", "4bit"),
    "teacher.kind": _one_of("embedded", "openai"),
    "teacher.max_new_tokens": _positive_int,
    "teacher.batch_size": _positive_int,
    "teacher.concurrency": _positive_int,
    "teacher.max_retries": _non_negative_int,
    "ingest.strategy": _one_of("fast", "hi_res", "auto"),
    "ingest.on_error": _one_of("skip", "fail"),
    "ingest.keep": _one_of("prose", "all"),
    "ingest.ocr": _one_of("auto", "off"),
    "ingest.min_paragraph_chars": _non_negative_int,
    "ingest.max_paragraph_chars": _positive_int,
    "ingest.max_graphics_ops": _positive_int,
    "ingest.workers": _optional_positive_int,
    "ingest.min_page_fidelity": _optional_share,
    "synth.questions_per_paragraph": _positive_int,
    "data.general_source": _one_of("jsonl", "hub"),
    "data.general_limit": _positive_int,
    "data.domain_source": _one_of("synthesize", "sai_csv"),
    "data.reference": _one_of("teacher", "column"),
    "dataset.raft.distractors": _non_negative_int,
    "dataset.raft.no_gold_share": _fraction,
    "dataset.raft.max_distractor_chars": _positive_int,
    "benchmark.questions_per_document": _optional_positive_int,
    "benchmark.critic.enabled": _auto_or_boolean,
    "benchmark.critic.min_score": _positive_int,
    "benchmark.min_paragraph_chars": _non_negative_int,
    "benchmark.leakage.question_cosine": _fraction,
    "data.leakage_max": _optional_non_negative_int,
    "eval.max_reference_tokens": _optional_positive_int,
    "lora.r": _positive_int,
    "lora.alpha": _positive_number,
    "lora.dropout": _fraction,
    "train.lr": _positive_number,
    "train.warmup_steps": _non_negative_int,
    "train.batch_size": _positive_int,
    "train.grad_accum": _positive_int,
    "train.max_length": _positive_int,
    "train.loss_on": _one_of("response", "all"),
    "train.general_loss_on": _optional_one_of("response", "all"),
    "train.domain_loss_on": _optional_one_of("response", "all"),
    "train.general_max_steps": _positive_int,
    "train.domain_max_steps": _positive_int,
    "train.general_schedule_steps": _optional_positive_int,
    "train.general_epochs": _optional_positive_number,
    "train.domain_epochs": _optional_positive_number,
    "train.domain_schedule_steps": _optional_positive_int,
    "train.eval_steps": _positive_int,
    "train.save_steps": _positive_int,
    "train.logging_steps": _positive_int,
    "train.eval_fraction": _fraction,
    "train.precision": _one_of("auto", "fp32", "bf16", "fp16"),
    "train.packing": _one_of("auto", "on", "off"),
    "train.max_eval_rows": _optional_positive_int,
    "train.launcher": _one_of("none", "accelerate"),
    "train.num_processes": _positive_int,
    "train.distributed": _one_of("ddp", "fsdp"),
    "rag.chunk_tokens": _positive_int,
    "rag.chunk_overlap": _non_negative_int,
    "rag.top_k": _positive_int,
    "rag.max_new_tokens": _positive_int,
    "rag.repetition_penalty": _positive_number,
    "rag.batch_size": _positive_int,
    "rag.chunking": _one_of("tokens", "by_title"),
    "rag.dtype": _one_of("auto", "float32", "bfloat16", "float16"),
    "rag.prefill": _one_of("auto", "batched", "per_prompt"),
    "rag.engine": _one_of("transformers", "openai"),
    "rag.server.concurrency": _positive_int,
    "rag.server.max_retries": _non_negative_int,
    "eval.bootstrap": _positive_int,
    "eval.ci": _fraction,
    "eval.grounding_threshold": _fraction,
    "eval.min_questions": _positive_int,
    "eval.target_difference": _positive_number,
    "eval.paired_sd": _positive_number,
    "eval.easy_rescaled": _fraction,
    "rag.closed_book": _boolean,
    "dataset.drop_invalid_questions": _boolean,
    "dataset.drop_wrong_language": _boolean,
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first invalid key, before any expensive work."""
    problems = []
    for key, check in RULES.items():
        value = OmegaConf.select(cfg, key, default="<missing>")
        if value == "<missing>":
            problems.append(f"{key} is missing")
        elif not check(value):
            problems.append(f"{key} must be {check.__doc__}, got {value!r}")
    if not problems:
        if cfg.rag.chunk_overlap >= cfg.rag.chunk_tokens:
            problems.append(f"rag.chunk_overlap ({cfg.rag.chunk_overlap}) must be smaller than rag.chunk_tokens ({cfg.rag.chunk_tokens})")
        if cfg.ingest.min_paragraph_chars >= cfg.ingest.max_paragraph_chars:
            problems.append("ingest.min_paragraph_chars must be smaller than ingest.max_paragraph_chars")
        if cfg.model.source == "package" and not cfg.model.gguf_file:
            problems.append("model.gguf_file is required when model.source=package")
        if cfg.model.source == "path" and not cfg.model.path:
            problems.append("model.path is required when model.source=path")
        for stage in ("general", "domain"):
            horizon = cfg.train[f"{stage}_schedule_steps"]
            if horizon is not None and cfg.train[f"{stage}_epochs"] is not None:
                problems.append(f"train.{stage}_schedule_steps and train.{stage}_epochs exclude each other: an epoch "
                                "count decays over the steps it computes")
            elif horizon is not None and (cfg.train.scheduler != "cosine" or horizon < cfg.train[f"{stage}_max_steps"]):
                problems.append(f"train.{stage}_schedule_steps ({horizon}) needs train.scheduler=cosine and must be at "
                                f"least train.{stage}_max_steps ({cfg.train[f'{stage}_max_steps']}); or set it to null")
        if not cfg.model.target_modules:
            problems.append("model.target_modules must list the modules LoRA adapts")
        if cfg.teacher.kind == "embedded" and cfg.teacher.get("dtype", "float32") not in ("auto", "float32", "bfloat16",
                                                                                          "float16"):
            problems.append(f"teacher.dtype must be one of auto, float32, bfloat16, float16, got {cfg.teacher.dtype!r}")
        if cfg.train.precision == "fp16" and not _cuda_available():
            problems.append("train.precision=fp16 needs a GPU (float16 autocast does not train on a CPU); use auto, "
                            "bf16 or fp32")
        problems += launch_problems(cfg)
        extra = OmegaConf.select(cfg, "train.extra_seeds", default=None)
        if not _seed_list(extra):
            problems.append(f"train.extra_seeds must be a list of distinct non-negative integers, got {extra!r} "
                            "(e.g. -S 'train.extra_seeds=[1,2]')")
        elif cfg.seed in extra:
            problems.append(f"train.extra_seeds holds seed ({cfg.seed}), which the adapters already train with: "
                            "list only the other seeds")
        listed = OmegaConf.select(cfg, "eval.variant_seeds", default=None)
        if listed is not None and not isinstance(listed, DictConfig) or listed and any(
                not _seed_list(v) or cfg.seed in v for v in listed.values()):
            problems.append(f"eval.variant_seeds must map variants to lists of distinct non-negative seeds other than "
                            f"seed ({cfg.seed}), got {listed!r} (e.g. 'eval.variant_seeds={{domain_raft:[1,2]}}')")
        if cfg.data.domain_source == "sai_csv" and not cfg.data.sai_csv:
            problems.append("data.sai_csv is required when data.domain_source=sai_csv")
        problems += task_problems(cfg)
    if problems:
        raise ConfigError("invalid configuration (fix it in conf/ or with an override such as -S key=value):\n  - "
                          + "\n  - ".join(problems))


def _seed_list(value: Any) -> bool:
    """A list of distinct non-negative integers: training seeds (train.extra_seeds, eval.variant_seeds' values)."""
    return (OmegaConf.is_list(value) or isinstance(value, list)) and all(_non_negative_int(x) for x in value) \
        and len(set(value)) == len(value)


def launch_problems(cfg: DictConfig) -> list[str]:
    """train.launcher and its keys: a process count that splits every batch evenly, nothing set that would be ignored."""
    t, problems = cfg.train, []
    if t.launcher == "none":
        if t.num_processes != 1:
            problems.append(f"train.num_processes={t.num_processes} needs train.launcher=accelerate (the default, "
                            "none, trains in one process)")
        if t.distributed != "ddp" or t.accelerate_config:
            problems.append("train.distributed and train.accelerate_config need train.launcher=accelerate")
        return problems
    if t.batch_size % t.num_processes:
        problems.append(f"train.batch_size ({t.batch_size}) must divide by train.num_processes ({t.num_processes}): "
                        f"each process takes an equal share of every batch, so the global batch stays train.batch_size "
                        f"x train.grad_accum ({t.batch_size * t.grad_accum} rows a step); set train.batch_size to a "
                        f"multiple of {t.num_processes} (and lower train.grad_accum to keep the global batch)")
    if t.distributed == "fsdp" and cfg.model.quantization == "4bit":
        problems.append("train.distributed=fsdp does not shard a 4-bit model here: use train.distributed=ddp with "
                        "model.quantization=4bit, or model.quantization=none with fsdp")
    if t.accelerate_config and not resolve_path(t.accelerate_config).is_file():
        problems.append(f"train.accelerate_config: {resolve_path(t.accelerate_config)} does not exist (write it with "
                        "`accelerate config --config_file <path>`)")
    return problems


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def valid_task_name(name: str) -> bool:
    """Task names become Qdrant collection and file names: letters, digits, `-` and `_`."""
    return bool(_TASK_NAME.match(name))


def task_problems(cfg: DictConfig) -> list[str]:
    """The benchmark's tasks: named ones need documents and questions; none named means generated from documents."""
    problems = []
    if OmegaConf.is_missing(cfg.data, "corpus_dir"):
        return ["data.corpus_dir must be set to the folder of your documents: -S data.corpus_dir=/path/to/papers"]
    tasks = OmegaConf.select(cfg, "data.tasks")
    if tasks is None:
        return ["data.tasks is missing: name the benchmark tasks, or set it to {} to generate them (data=documents)"]
    for name, task in tasks.items():
        if not valid_task_name(str(name)):
            problems.append(f"data.tasks.{name}: a task name may hold letters, digits, '-' and '_' only")
        for key in ("documents", "questions"):
            if not OmegaConf.select(task, key):
                problems.append(f"data.tasks.{name}.{key} is missing")
    if not tasks:
        if cfg.data.domain_source != "synthesize":
            problems.append("data.tasks is empty (generate the benchmark from the documents), which needs "
                            "data.domain_source=synthesize")
        fraction = OmegaConf.select(cfg, "data.split.benchmark_fraction")
        if not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
            problems.append(f"data.split.benchmark_fraction must be a number in (0, 1), got {fraction!r}")
        overlap = OmegaConf.select(cfg, "data.split.group_overlap")
        if overlap is not None and not (isinstance(overlap, (int, float)) and 0 < overlap <= 1):
            problems.append(f"data.split.group_overlap must be a number in (0, 1] or null, got {overlap!r}")
        if not (isinstance(cfg.benchmark.max_rounds, int) and cfg.benchmark.max_rounds >= 1):
            problems.append(f"benchmark.max_rounds must be an integer of at least 1, got {cfg.benchmark.max_rounds!r}")
        if not (cfg.benchmark.per_document_tasks or cfg.benchmark.joint_task):
            problems.append("benchmark.per_document_tasks=false and benchmark.joint_task=null leave no task")
        if cfg.benchmark.joint_task and not valid_task_name(str(cfg.benchmark.joint_task)):
            problems.append("benchmark.joint_task may hold letters, digits, '-' and '_' only")
    if cfg.eval.max_reference_tokens is not None and cfg.eval.max_reference_tokens < cfg.rag.max_new_tokens:
        problems.append(f"eval.max_reference_tokens ({cfg.eval.max_reference_tokens}) must be at least "
                        f"rag.max_new_tokens ({cfg.rag.max_new_tokens}), or null")
    return problems


# A leaf named like a credential (`api_key`, `hf_token`, `secret`, `password`, ...), but not a count of tokens
# (`chunk_tokens`, `max_new_tokens`) nor the name of the environment variable that holds a key (`api_key_env`).
SECRET_NAME = re.compile(r"(^|_)(api_?key|key|token|secret|password|passwd|credentials?|auth)$")


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """Dotted keys to values for MLflow params; long prompt texts are shortened, secrets dropped."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
            return
        key = prefix[:-1]
        leaf = key.rsplit(".", 1)[-1].lower()
        if SECRET_NAME.search(leaf):
            return
        text = str(node)
        flat[key] = text if len(text) <= 250 else text[:240] + "..."

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def work_root() -> Path:
    """Where relative input and output paths live: the repository, or $SLING_WORKDIR (tests use a tmp dir)."""
    return Path(os.environ.get("SLING_WORKDIR") or ROOT)


def resolve_path(p: str | os.PathLike) -> Path:
    """Config and stage paths are relative to the work root (the repository unless SLING_WORKDIR is set)."""
    path = Path(p).expanduser()
    return path if path.is_absolute() else work_root() / path
