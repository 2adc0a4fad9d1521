"""Which number format the hardware computes fastest in, for training (`train.precision`) and for decoding
(`rag.dtype`, `teacher.dtype`).

    sling precision            # prints what `auto` resolves to on this machine

`auto` resolves to bfloat16 where the hardware has native bfloat16 arithmetic (a CUDA GPU that supports it; a CPU
with AVX-512 BF16 or AMX tiles), to float16 on a GPU without bfloat16, and to float32 elsewhere. A CPU without
native bfloat16 emulates it, which is slower than float32: `auto` never picks it there, a forced setting does
(with a warning). Training in bf16/fp16 is mixed precision (autocast; the LoRA weights and optimizer stay float32);
decoding in bfloat16 casts the weights.
"""
from __future__ import annotations

import functools
import logging

from sling.errors import ConfigError

log = logging.getLogger(__name__)

TRAIN_CHOICES = ("auto", "fp32", "bf16", "fp16")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
_SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
_LONG = {v: k for k, v in _SHORT.items()}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@functools.cache
def cpu_native_bf16() -> bool:
    """AVX-512 BF16 or AMX tiles, as torch sees them (oneDNN uses both for bfloat16 matmuls)."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def native_formats() -> dict[str, bool]:
    """What the device that will compute (the GPU when there is one, else the CPU) does natively."""
    import torch

    if _cuda():
        return {"bf16": torch.cuda.is_bf16_supported(), "fp16": True}
    return {"bf16": cpu_native_bf16(), "fp16": False}


def train_precision(setting: str) -> str:
    """`train.precision` resolved: fp32, bf16 or fp16."""
    if setting not in TRAIN_CHOICES:
        raise ConfigError(f"train.precision must be one of {', '.join(TRAIN_CHOICES)}, got {setting!r}")
    native = native_formats()
    if setting == "auto":
        return "bf16" if native["bf16"] else "fp16" if native["fp16"] else "fp32"
    if setting == "fp16" and not _cuda():
        raise ConfigError("train.precision=fp16 needs a GPU (float16 autocast is not supported for training on a "
                          "CPU); use train.precision=auto, bf16 or fp32")
    if setting in ("bf16", "fp16") and not native[setting]:
        log.warning("train.precision=%s: this device has no native %s arithmetic, so it is emulated and slower than "
                    "fp32 (train.precision=auto picks what is native)", setting, setting)
    return setting


def decode_dtype(setting: str, key: str = "rag.dtype") -> str:
    """A decoding dtype setting (`rag.dtype`, `teacher.dtype`) resolved: float32, bfloat16 or float16."""
    if setting not in DTYPE_CHOICES:
        raise ConfigError(f"{key} must be one of {', '.join(DTYPE_CHOICES)}, got {setting!r}")
    if setting != "auto":
        if setting != "float32" and not native_formats()[_SHORT[setting]]:
            log.warning("%s=%s: this device has no native %s arithmetic; float32 may be faster (%s=auto picks what "
                        "is native)", key, setting, setting, key)
        return setting
    return _LONG[train_precision("auto")]


def summary() -> dict:
    """What `auto` resolves to here, with the device and the formats it computes natively (`sling precision`)."""
    return {"device": "cuda" if _cuda() else "cpu", "native": native_formats(),
            "train.precision=auto": train_precision("auto"), "rag.dtype=auto": decode_dtype("auto")}
