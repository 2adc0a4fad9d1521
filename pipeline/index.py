"""Stage index: benchmark documents -> token-counted chunks -> sentence embeddings -> Qdrant.

    python -m pipeline.index
    python -m pipeline.index rag.chunk_tokens=200 rag.qdrant_url=http://localhost:6333

Per collection the benchmark stage listed (one per task the split allows, whichever its questions filled) the documents are ingested like the corpus, split into
chunks of `rag.chunk_tokens` tokens with `rag.chunk_overlap` overlap counted with the student's tokenizer
(`rag.chunking=by_title` keeps sections together instead), embedded, and upserted under deterministic
point ids, so re-indexing the same chunks changes nothing and stale points are removed.
"""
from __future__ import annotations

from omegaconf import OmegaConf
from tqdm import tqdm

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.io import provenance, write_json, write_jsonl
from sling.models.loading import load_tokenizer
from sling.paths import (
    CHUNK_LENGTHS,
    CHUNKS,
    INDEX_METRICS,
    INDEX_PROVENANCE,
    COLLECTIONS,
    collections,
)
from sling.retrieval.chunking import build_chunks, chunk_histogram, log
from sling.embed import embed
from sling.retrieval.store import collection_name, qdrant_client, upsert
from sling.tracking.runs import log_artifact, log_metrics, stage_run


# the rag keys the index is built from (dvc.yaml lists them, with ingest, as the stage's params)
INDEX_RAG_KEYS = ("embedder", "chunk_tokens", "chunk_overlap", "chunking", "qdrant_path", "qdrant_url", "collection_prefix")


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    tokenizer = load_tokenizer()
    with stage_run("index", cfg):
        client = qdrant_client(cfg.rag)
        metrics = {}
        memo: dict = {}
        seen: dict = {}  # a collection's chunk texts -> their vectors
        for task, listing in tqdm(collections().items(), desc="index", unit="collection"):
            chunks = build_chunks(cfg.rag, cfg.ingest, task, listing, tokenizer, memo)
            # collections over the same documents (the joint and the multi-hop task) embed their chunks once
            texts = tuple(c["text"] for c in chunks)
            if texts not in seen:
                seen[texts] = embed(cfg.rag.embedder, list(texts))
            vectors = seen[texts]
            upsert(client, collection_name(cfg.rag, task), chunks, vectors)
            write_jsonl(resolve_path(CHUNKS.format(task=task)), chunks)
            n = [c["n_tokens"] for c in chunks]
            write_json(resolve_path(CHUNK_LENGTHS.format(task=task)), chunk_histogram(task, n, cfg.rag.chunk_tokens))
            metrics[task] = {"chunks": len(chunks), "documents": len({c["document"] for c in chunks}),
                             "mean_tokens": round(sum(n) / len(n), 1), "max_tokens": max(n), "min_tokens": min(n)}
        client.close()
        write_json(resolve_path(INDEX_METRICS), metrics)
        # the keys this stage reads (its params in dvc.yaml), not the whole rag group: a decoding key such as
        # rag.batch_size does not change the index, and must not change its bytes
        rag = OmegaConf.to_container(cfg.rag, resolve=True)
        read = {"ingest": OmegaConf.to_container(cfg.ingest, resolve=True), "rag": {k: rag[k] for k in INDEX_RAG_KEYS}}
        write_json(resolve_path(INDEX_PROVENANCE), provenance("index", read, {"collections": resolve_path(COLLECTIONS)}))
        log_metrics(metrics, prefix="index.")
        log_artifact(resolve_path(CHUNK_LENGTHS.format(task="x")).parent, "chunk_lengths")
        log.info("%s", metrics)


if __name__ == "__main__":
    run(main)

