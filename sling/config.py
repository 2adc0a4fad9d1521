"""Composing, loading and validating the configuration; every key's type, default and doc are in sling.schema.

Under DVC a stage reads `params.yaml` (DVC composes `conf/` into it on `dvc exp run`, with the schema that the
`hydra_plugins/sling_schema` plugin registers). By hand, a stage takes Hydra overrides, e.g.
`python -m pipeline.train general lora.r=8 model=phi-1_5`, and then composes `conf/` itself (`compose`). Either way
the result is typed by the schema (a wrong type or an unknown key fails at composition, or when params.yaml is
merged into the schema) and then validated (`validate`: each key's checks from the schema's field metadata, the
checks across keys in sling.schema, and what needs this machine: a GPU for fp16, the accelerate config file)
before any model or data is loaded. Every such error is one `ConfigError` naming the key and the fix.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sling import schema
from sling.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
PARAMS = ROOT / "params.yaml"


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose `conf/` with Hydra overrides over the schema, as `dvc exp run -S` does; a wrong type, an unknown key
    or an unknown preset is a ConfigError naming it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    schema.register()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as e:
        raise config_error(e) from e


def load_config(argv: list[str] | None = None) -> DictConfig:
    """`params.yaml` when no overrides are given, else `conf/` composed with them; typed by the schema, validated."""
    overrides = [a for a in (sys.argv[1:] if argv is None else argv) if "=" in a or a.startswith("~")]
    if overrides:
        cfg = compose(overrides)
    else:
        if not PARAMS.exists():
            raise ConfigError(f"{PARAMS} is missing: run `python -m pipeline.compose` to write it from conf/")
        try:
            cfg = schema.typed(OmegaConf.load(PARAMS))
        except OmegaConfBaseException as e:
            raise config_error(e, where=f"{PARAMS.name} (rewrite it with `python -m pipeline.compose`)") from e
    validate(cfg)
    return cfg


FIX = "fix it in conf/ or with an override such as -S key=value"


def config_error(e: BaseException, where: str = "") -> ConfigError:
    """One ConfigError line for Hydra's or OmegaConf's error at composition (or when params.yaml is typed): the key,
    what its value must be (sling.schema), or Hydra's own message where no key is to blame."""
    found: BaseException | None = e
    while found is not None and not getattr(found, "full_key", None):
        found = found.__cause__ or found.__context__
    fix = f"fix it in {where}" if where else FIX
    if found is None:
        return ConfigError(f"invalid configuration: {_one_line(e)} ({fix})")
    full_key = str(found.full_key)
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    field = schema.field_of(full_key)
    if isinstance(found, ValidationError) and field is not None:
        got = f", got {found.value!r}" if hasattr(found, "value") else ""
        problem = f"{full_key} must be {schema.describe(field)}{got}"
    elif isinstance(found, (ConfigKeyError, ConfigAttributeError)) and dataclasses.is_dataclass(
            getattr(found, "object_type", None)):
        owner = schema.schema_name(found.object_type)
        problem = f"{full_key} is not a config key of {owner} (sling/schema.py lists every key)"
    else:  # Hydra's own message says what to do (e.g. `+key=...` to add a mapping's entry), then OmegaConf's
        cause = f"{full_key}: {_one_line(str(found).splitlines()[0])}"
        problem = cause if found is e else f"{_one_line(e)} ({cause})"
    return ConfigError(f"invalid configuration: {problem} ({fix})")


def _one_line(e: BaseException | str) -> str:
    """An error's text on one line, without Hydra's config search path listing."""
    return " ".join(str(e).split("Config search path:")[0].split())


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming every invalid key, before any expensive work: each key against its schema field
    (type and checks), then, when each key is fine alone, the checks across keys and those needing this machine."""
    problems = schema.key_problems(cfg)
    if not problems:
        problems += schema.cross_key_problems(cfg)
        if cfg.train.precision == "fp16" and not _cuda_available():
            problems.append("train.precision=fp16 needs a GPU (float16 autocast does not train on a CPU); use auto, "
                            "bf16 or fp32")
        accelerate_config = cfg.train.accelerate_config
        if cfg.train.launcher == "accelerate" and accelerate_config \
                and not resolve_path(accelerate_config).is_file():
            problems.append(f"train.accelerate_config: {resolve_path(accelerate_config)} does not exist (write it "
                            "with `accelerate config --config_file <path>`)")
    if problems:
        raise ConfigError(f"invalid configuration ({FIX}):\n  - " + "\n  - ".join(problems))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


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
