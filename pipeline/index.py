"""Stage index: benchmark documents -> token-counted chunks -> sentence embeddings -> Qdrant.

    python -m pipeline.index
    python -m pipeline.index rag.chunk_tokens=200 rag.qdrant_url=http://localhost:6333

Per benchmark task (as the benchmark stage listed them) the documents are ingested like the corpus, split into
chunks of `rag.chunk_tokens` tokens with `rag.chunk_overlap` overlap counted with the student's tokenizer
(`rag.chunking=by_title` keeps sections together instead), embedded, and upserted under deterministic
point ids, so re-indexing the same chunks changes nothing and stale points are removed.
"""
from __future__ import annotations

import logging
import uuid
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from pipeline.cli import run
from pipeline.clean import clean, clean_glyphs, vocabulary
from pipeline.config import load_config, resolve_path
from pipeline.embed import embed
from pipeline.ingest import DocumentError, ingest_document, partition, readable, to_blocks
from pipeline.io import provenance, sha256_text, write_json, write_jsonl
from pipeline.models import load_tokenizer
from pipeline.paths import CHUNK_LENGTHS, CHUNKS, TASKS, tasks
from pipeline.tracking import log_artifact, log_metrics, stage_run

log = logging.getLogger("index")

NAMESPACE = uuid.UUID("5b1e7f4c-0c1d-4d7e-9a51-2f0f6d3a8e11")


def task_documents(task: str, listing: dict) -> list[Path]:
    """The task's documents as the benchmark stage listed them."""
    docs = [resolve_path(d) for d in listing["documents"]]
    missing = [str(d) for d in docs if not d.exists()]
    if missing:
        raise FileNotFoundError(f"task {task}: documents {missing} are gone since the benchmark stage listed them; "
                                "re-run it (`dvc repro`)")
    return docs


def window(ids: list[int], size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) token windows of `size` with `overlap` tokens shared by neighbours."""
    spans, start, step = [], 0, size - overlap
    while start < len(ids):
        spans.append((start, min(start + size, len(ids))))
        if start + size >= len(ids):
            break
        start += step
    return spans


def chunk_document(paragraphs: list[dict], tokenizer, size: int, overlap: int, document: str) -> list[dict]:
    """Token windows over the document's paragraphs, each chunk keeping the pages it spans."""
    ids, pages = [], []
    for p in paragraphs:
        p_ids = tokenizer(p["text"] + "\n\n", add_special_tokens=False)["input_ids"]
        ids += p_ids
        pages += [p["page"]] * len(p_ids)
    chunks = []
    for start, end in window(ids, size, overlap):
        text = tokenizer.decode(ids[start:end], skip_special_tokens=True).strip()
        if text:
            chunks.append({"document": document, "pages": sorted(set(pages[start:end])), "n_tokens": end - start, "text": text})
    return chunks


def sections(path: Path, cfg: DictConfig) -> list[dict]:
    """The document cut at its titles: each section's title and body text, with the pages it spans.

    Hand-written because unstructured's `chunk_by_title` sizes chunks in characters, and chunks here are
    sized in the student's tokens; the elements themselves come from the same partitioning as ingest.
    """
    with readable(path) as (_, target, _):  # the same checks and repair as ingest: encrypted, empty, damaged
        elements = partition(target, cfg)
    if not elements:
        raise DocumentError(f"{path}: unstructured returned no elements; see ingest.max_graphics_ops and the spaCy model")
    out: list[dict] = []
    for b in to_blocks(elements, cfg.ingest.drop_references):
        if b.kind == "Title" and len(b.text) < 120:
            out.append({"title": b.text, "parts": [], "pages": [b.page]})
        else:
            if not out:
                out.append({"title": "", "parts": [], "pages": []})
            out[-1]["parts"].append(b.text)
            out[-1]["pages"].append(b.page)
    texts = ["\n".join(filter(None, [s["title"], " ".join(s["parts"])])) for s in out]
    vocab = vocabulary([clean_glyphs(x) for x in texts])  # cleaned as ingest cleans paragraphs (pipeline.clean)
    return [{"text": clean(x, vocab), "pages": s["pages"]} for x, s in zip(texts, out) if s["parts"]]


def chunk_sections(secs: list[dict], tokenizer, size: int, overlap: int, document: str) -> list[dict]:
    """Whole sections packed in order into chunks of at most `size` tokens; a section longer than `size`
    is a run of overlapping windows of its own. No section is split unless it alone exceeds `size`."""
    chunks: list[dict] = []
    pack: dict = {"ids": [], "pages": set()}

    def emit(ids: list[int], pages: set) -> None:
        text = tokenizer.decode(ids, skip_special_tokens=True).strip()
        if text:
            chunks.append({"document": document, "pages": sorted(pages), "n_tokens": len(ids), "text": text})

    for sec in secs:
        ids = tokenizer(sec["text"] + "\n\n", add_special_tokens=False)["input_ids"]
        if pack["ids"] and len(pack["ids"]) + len(ids) > size:
            emit(pack["ids"], pack["pages"])
            pack = {"ids": [], "pages": set()}
        if len(ids) > size:
            for start, end in window(ids, size, overlap):
                emit(ids[start:end], set(sec["pages"]))
        else:
            pack["ids"] += ids
            pack["pages"] |= set(sec["pages"])
    if pack["ids"]:
        emit(pack["ids"], pack["pages"])
    return chunks


def histogram(lengths: list[int], size: int, bins: int = 10) -> list[dict]:
    """Chunk counts per token-length bin (bins of size/bins tokens up to the chunk size)."""
    width = max(1, -(-size // bins))
    counts = [0] * (-(-size // width) + 1)
    for n in lengths:
        counts[min(n // width, len(counts) - 1)] += 1
    return [{"n_tokens": f"{i * width}-{(i + 1) * width - 1}", "chunks": c} for i, c in enumerate(counts)]


def chunk_histogram(task: str, lengths: list[int], size: int) -> list[dict]:
    """A task's histogram as DVC draws it (.dvc/plots/histogram.json): each bin's row names the task, which heads
    the panel."""
    return [{"task": task, **row} for row in histogram(lengths, size)]


def qdrant_client(cfg: DictConfig):
    from qdrant_client import QdrantClient

    if cfg.rag.qdrant_url:
        return QdrantClient(url=cfg.rag.qdrant_url)
    path = resolve_path(cfg.rag.qdrant_path)
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


def collection_name(cfg: DictConfig, task: str) -> str:
    return f"{cfg.rag.collection_prefix}_{task}"


def upsert(client, name: str, chunks: list[dict], vectors) -> None:
    from qdrant_client import models as qm

    dim = int(vectors.shape[1])
    if client.collection_exists(name):
        info = client.get_collection(name)
        if info.config.params.vectors.size != dim:
            client.delete_collection(name)
    if not client.collection_exists(name):
        client.create_collection(name, vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE))
    points = [qm.PointStruct(id=c["id"], vector=v.tolist(), payload=c) for c, v in zip(chunks, vectors)]
    client.upsert(name, points=points, wait=True)
    keep = {c["id"] for c in chunks}
    stale, offset = [], None
    while True:
        page, offset = client.scroll(name, limit=256, offset=offset, with_payload=False, with_vectors=False)
        stale += [p.id for p in page if str(p.id) not in keep]
        if offset is None:
            break
    if stale:
        client.delete(name, points_selector=qm.PointIdsList(points=stale), wait=True)


def document_chunks(cfg: DictConfig, path: Path, tokenizer) -> list[dict]:
    size, overlap = cfg.rag.chunk_tokens, cfg.rag.chunk_overlap
    if cfg.rag.chunking == "by_title":
        doc_chunks = chunk_sections(sections(path, cfg), tokenizer, size, overlap, path.name)
    else:
        paragraphs, _ = ingest_document(path, cfg)
        doc_chunks = chunk_document(paragraphs, tokenizer, size, overlap, path.name)
    if not doc_chunks:
        raise DocumentError(f"{path}: no chunk of text (rag.chunking={cfg.rag.chunking}); check the document")
    return doc_chunks


def build_chunks(cfg: DictConfig, task: str, listing: dict, tokenizer, memo: dict | None = None) -> list[dict]:
    """The task's chunks with deterministic ids; `memo` keeps each document's chunks across the tasks of one run."""
    chunks = []
    memo = {} if memo is None else memo
    for path in task_documents(task, listing):
        if path not in memo:
            memo[path] = document_chunks(cfg, path, tokenizer)
        for i, c in enumerate(dict(c) for c in memo[path]):
            c["chunk_index"] = i
            c["id"] = str(uuid.uuid5(NAMESPACE, f"{task}|{path.name}|{i}|{sha256_text(c['text'])}"))
            c["task"] = task
            chunks.append(c)
    return chunks


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    tokenizer = load_tokenizer()
    with stage_run("index", cfg):
        client = qdrant_client(cfg)
        metrics = {}
        memo: dict = {}
        for task, listing in tqdm(tasks().items(), desc="index", unit="task"):
            chunks = build_chunks(cfg, task, listing, tokenizer, memo)
            vectors = embed(cfg.rag.embedder, [c["text"] for c in chunks])
            upsert(client, collection_name(cfg, task), chunks, vectors)
            write_jsonl(resolve_path(CHUNKS.format(task=task)), chunks)
            n = [c["n_tokens"] for c in chunks]
            write_json(resolve_path(CHUNK_LENGTHS.format(task=task)), chunk_histogram(task, n, cfg.rag.chunk_tokens))
            metrics[task] = {"chunks": len(chunks), "documents": len({c["document"] for c in chunks}),
                             "mean_tokens": round(sum(n) / len(n), 1), "max_tokens": max(n), "min_tokens": min(n)}
        client.close()
        write_json(resolve_path("metrics/index.json"), metrics)
        write_json(resolve_path("index/provenance.json"), provenance(
            "index", OmegaConf.to_container(cfg.rag, resolve=True), {"tasks": resolve_path(TASKS)}))
        log_metrics(metrics, prefix="index.")
        log_artifact(resolve_path(CHUNK_LENGTHS.format(task="x")).parent, "chunk_lengths")
        log.info("%s", metrics)


if __name__ == "__main__":
    run(main)
