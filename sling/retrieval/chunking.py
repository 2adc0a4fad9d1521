"""Chunks for the retrieval index: each task's documents read as ingest reads them, cut into token windows
(`rag.chunking=tokens`) or title sections (`by_title`), with deterministic chunk ids, and the chunk-length histogram.
Entry point: `pipeline/index.py`.
"""
from __future__ import annotations

import logging
import uuid
from pathlib import Path

from sling.config import resolve_path
from sling.documents.clean import clean, clean_glyphs, vocabulary
from sling.documents.read import (
    DocumentError,
    ingest_document,
    partition,
    readable,
    to_blocks,
)
from sling.io import sha256_text
from sling.schema import Ingest, Rag

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


def sections(path: Path, ingest: Ingest) -> list[dict]:
    """The document cut at its titles: each section's title and body text, with the pages it spans.

    Hand-written because unstructured's `chunk_by_title` sizes chunks in characters, and chunks here are
    sized in the student's tokens; the elements themselves come from the same partitioning as ingest.
    """
    with readable(path) as (_, target, _):  # the same checks and repair as ingest: encrypted, empty, damaged
        elements = partition(target, ingest)
    if not elements:
        raise DocumentError(f"{path}: unstructured returned no elements; see ingest.max_graphics_ops and the spaCy model")
    out: list[dict] = []
    for b in to_blocks(elements, ingest.drop_references):
        if b.kind == "Title" and len(b.text) < 120:
            out.append({"title": b.text, "parts": [], "pages": [b.page]})
        else:
            if not out:
                out.append({"title": "", "parts": [], "pages": []})
            out[-1]["parts"].append(b.text)
            out[-1]["pages"].append(b.page)
    texts = ["\n".join(filter(None, [s["title"], " ".join(s["parts"])])) for s in out]
    vocab = vocabulary([clean_glyphs(x) for x in texts])  # cleaned as ingest cleans paragraphs (sling.documents.clean)
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


def document_chunks(rag: Rag, ingest: Ingest, path: Path, tokenizer) -> list[dict]:
    """One document's chunks (`rag.chunking`), its text read as `ingest` reads it."""
    size, overlap = rag.chunk_tokens, rag.chunk_overlap
    if rag.chunking == "by_title":
        doc_chunks = chunk_sections(sections(path, ingest), tokenizer, size, overlap, path.name)
    else:
        paragraphs, _ = ingest_document(path, ingest)
        doc_chunks = chunk_document(paragraphs, tokenizer, size, overlap, path.name)
    if not doc_chunks:
        raise DocumentError(f"{path}: no chunk of text (rag.chunking={rag.chunking}); check the document")
    return doc_chunks


def build_chunks(rag: Rag, ingest: Ingest, task: str, listing: dict, tokenizer,
                 memo: dict | None = None) -> list[dict]:
    """The task's chunks with deterministic ids; `memo` keeps each document's chunks across the tasks of one run."""
    chunks = []
    memo = {} if memo is None else memo
    for path in task_documents(task, listing):
        if path not in memo:
            memo[path] = document_chunks(rag, ingest, path, tokenizer)
        for i, c in enumerate(dict(c) for c in memo[path]):
            c["chunk_index"] = i
            c["id"] = str(uuid.uuid5(NAMESPACE, f"{task}|{path.name}|{i}|{sha256_text(c['text'])}"))
            c["task"] = task
            chunks.append(c)
    return chunks

