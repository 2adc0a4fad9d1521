"""Where a run ran: the CPU and the flags that pick its kernels, its cores, the library versions, the precision
`auto` resolves to here, torch's thread count.

    sling environment          # prints it as JSON

The same inputs give the same bytes only on the same kind of CPU with the same software (bf16 and fp32 kernels
differ by instruction set), so every provenance file (`sling.io.provenance`), the MLflow parent run
(`sling.tracking.runs`) and the report's footer carry it. It is deterministic on one machine: no timestamps, process
ids, host names or paths, and of the environment only the variables that change numerics or threading.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

# The flags that decide which matmul kernels torch (oneDNN, MKL) runs: what makes bf16 native (AVX-512 BF16, AMX
# tiles) and which vector width fp32 runs at.
KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve")
# Environment variables that change the numerics or the threading of torch's CPU kernels.
NUMERIC_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
               "ATEN_CPU_CAPABILITY", "ONEDNN_DEFAULT_FPMATH_MODE", "CUDA_VISIBLE_DEVICES")


@functools.cache
def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and its kernel-relevant flags, from /proc/cpuinfo (Linux); elsewhere what `platform`
    knows and no flags."""
    model, flags = "", set()
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Hardware", "cpu model") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    model = model or platform.processor() or platform.machine()
    return model, tuple(f for f in KERNEL_FLAGS if f in flags)


def run_environment() -> dict:
    """The machine and software a run computed on, as a JSON-ready dict (the same one on every call on one machine,
    so outputs that carry it stay byte-identical between runs there)."""
    import peft
    import torch
    import transformers

    from sling.precision import decode_dtype, train_precision

    model, flags = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    cuda = torch.cuda.is_available()
    return {
        "cpu": {"model": model, "architecture": platform.machine(), "flags": list(flags), "cores": os.cpu_count(),
                "usable_cores": usable, "torch_capability": torch.backends.cpu.get_cpu_capability()},
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
        "precision_auto": {"train": train_precision("auto"), "decode": decode_dtype("auto")},
        "torch_threads": torch.get_num_threads(),
        "env": {k: os.environ[k] for k in NUMERIC_ENV if k in os.environ},
    }


def summary(env: dict | None = None) -> str:
    """`run_environment()` in one line, for a footer: the CPU model, its usable cores and its main kernel flags,
    the GPU if any, the torch/transformers/peft versions, what `auto` precision resolves to, torch's threads, and
    any numerics variables set (`python -c 'from sling.environment import summary; print(summary())'`)."""
    env = env or run_environment()
    cpu, v, auto = env["cpu"], env["versions"], env["precision_auto"]
    shown = [f for f in cpu["flags"] if f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve")]
    where = f"{cpu['model']}, {cpu['usable_cores']} cores" + (f" ({', '.join(shown)})" if shown else "")
    if env["gpu"]:
        where += f", {env['gpu']}"
    text = (f"{where}; torch {v['torch']}, transformers {v['transformers']}, peft {v['peft']}; auto precision: "
            f"{auto['train']} training, {auto['decode']} decoding; {env['torch_threads']} torch threads")
    if env["env"]:
        text += "; " + ", ".join(f"{k}={val}" for k, val in env["env"].items())
    return text
