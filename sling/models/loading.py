"""Loading the student: the base snapshot, optionally 4-bit, with the general and domain adapters.

Adapters stack as in the paper: the general adapter is trained on the base model; the domain adapter is
trained on the base model with the general adapter merged into its weights. Every consumer (training,
answering, the embedded teacher) loads a variant through `load_student`, so each is built the same way.
"""
from __future__ import annotations

import logging
import os

from sling.config import resolve_path
from sling.errors import ConfigError
from sling.paths import BASE_DIR, adapter_dir
from sling.schema import Model

log = logging.getLogger(__name__)

# Which adapters, in order, make up each answerable variant.
VARIANTS = {"base": [], "general": ["general"], "domain": ["general", "domain"]}


def adapter_dirs_for(seed: int | None = None) -> dict[str, str]:
    """Every adapter's directory for one training seed (None: the run's `seed`; sling.paths.adapter_dir)."""
    return {stage: adapter_dir(stage, seed) for stage in ("general", "domain")}


ADAPTER_DIRS = adapter_dirs_for()


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def load_tokenizer(base_dir: str | os.PathLike = BASE_DIR):
    from transformers import AutoTokenizer

    path = resolve_path(base_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} holds no model: " + ("run `dvc repro snapshot_model` first" if str(base_dir) == BASE_DIR
                                                             else "check the path (teacher.model)"))
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def quantization_config(model: Model):
    if model.quantization != "4bit":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.float16 if _cuda() else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def compute_dtype(model: Model):
    """fp32 on the CPU (what trains reliably there); `model.dtype` on a GPU."""
    import torch

    return torch_dtype(model.dtype) if _cuda() else torch.float32


def load_base(model: Model, base_dir: str | os.PathLike = BASE_DIR, quantize: bool = False):
    """The base snapshot in `base_dir` at `compute_dtype`, 4-bit (`model.quantization`) when `quantize` is set."""
    from transformers import AutoModelForCausalLM

    path = resolve_path(base_dir)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} holds no model: run `dvc repro snapshot_model` first")
    qc = quantization_config(model) if quantize else None
    kwargs = {"dtype": compute_dtype(model)}
    if qc is not None:
        # Each process of a launched run (train.launcher=accelerate) loads onto its own GPU.
        kwargs.update(quantization_config=qc, device_map={"": int(os.environ.get("LOCAL_RANK", 0))} if _cuda() else "cpu")
    base = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    if qc is None and _cuda():
        base = base.to("cuda")
    return base


def merge_adapters(model, adapter_names: list[str], adapter_dirs: dict[str, str] | None = None):
    """Fold each adapter of `adapter_names` into the weights, in order."""
    from peft import PeftModel

    dirs = {**ADAPTER_DIRS, **(adapter_dirs or {})}
    for name in adapter_names:
        path = resolve_path(dirs[name])
        if not (path / "adapter_config.json").exists():
            raise FileNotFoundError(f"adapter '{name}' not found at {path}: run `dvc repro train_{name}` first")
        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    return model


def load_student(model: Model, variant: str = "base", adapter_dirs: dict[str, str] | None = None,
                 base_dir: str | os.PathLike = BASE_DIR):
    """The base model with the adapters of `variant` merged in, in eval mode."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r} (rag.variants); known: {', '.join(VARIANTS)}")
    student = merge_adapters(load_base(model, base_dir), VARIANTS[variant], adapter_dirs)
    student.eval()
    return student
