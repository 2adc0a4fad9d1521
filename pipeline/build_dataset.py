"""Stage build_dataset: synthetic Q&A -> filtered, document-split, formatted domain training set.

    python -m pipeline.build_dataset
    python -m pipeline.build_dataset dataset.min_grounding=0.5

Filters, each counted in metrics/dataset.json: paragraphs shorter than the configured length percentile,
empty/malformed/refusing generations, near-duplicate questions within a document (embedding cosine),
answers not grounded in their paragraph (content-word overlap). The split is by document, seeded, and
written as a manifest; no document is on both sides.
"""
from __future__ import annotations

from omegaconf import OmegaConf

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.data.dataset import log, raft_contexts, split_by_document
from sling.data.formats import domain_prompt, record
from sling.errors import InputError
from sling.io import provenance, read_jsonl, write_json, write_jsonl
from sling.paths import (
    DATASET_METRICS,
    DOMAIN_DIR,
    DOMAIN_SPLIT,
    SYNTHETIC,
    dataset_path,
    produced,
)
from sling.teacher.quality import filter_rows
from sling.tracking.runs import log_dataset, log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("build_dataset", cfg):
        rows = read_jsonl(produced(SYNTHETIC, "synthesize"))
        kept, dropped, min_len = filter_rows(cfg.dataset, rows)
        if not kept:
            raise InputError(f"every one of the {len(rows)} synthetic rows was filtered out ({dict(dropped)}); "
                             "loosen the dataset.* filters (e.g. dataset.min_grounding) or use a stronger teacher")
        train_docs, eval_docs = split_by_document([r["doc_id"] for r in kept], cfg.dataset.eval_fraction, cfg.seed)
        out = {"train": [], "eval": []}
        raft = cfg.dataset.raft.enabled
        contexts, short = raft_contexts(cfg, kept, train_docs) if raft else ([None] * len(kept), 0)
        for r, ctx in zip(kept, contexts):
            side = "eval" if r["doc_id"] in eval_docs else "train"
            lineage = {k: r.get(k) for k in ("doc_id", "document", "page", "paragraph_hash", "teacher", "prompt_version")}
            if ctx is None:
                prompt, response = domain_prompt(cfg, r["paragraph"], r["question"]), r["answer"]
            else:
                prompt = cfg.rag.prompt_template.format(context="\n\n".join(ctx["texts"]), question=r["question"])
                response = r["answer"] if ctx["lineage"]["gold_in_context"] else cfg.dataset.raft.absent_answer
                lineage["raft"] = ctx["lineage"]
            out[side].append(record(prompt, response, question=r["question"], seed=cfg.seed, **lineage))
        if short:
            log.warning("%d rows got fewer RAFT distractors than dataset.raft.distractors: too few other training "
                        "documents", short)
        if not out["eval"]:
            log.warning("only one document survived the filters: the eval split is empty, eval loss is skipped")
        for side, recs in out.items():
            write_jsonl(resolve_path(dataset_path(DOMAIN_DIR, side)), recs)
        names = {r["doc_id"]: r["document"] for r in kept}
        write_json(resolve_path(DOMAIN_SPLIT), {
            "train": {d: names[d] for d in train_docs}, "eval": {d: names[d] for d in eval_docs},
            "provenance": provenance("build_dataset", OmegaConf.to_container(cfg.dataset, resolve=True) | {"seed": cfg.seed},
                                     {"synthetic": resolve_path(SYNTHETIC)})})
        metrics = {"input_rows": len(rows), "kept": len(kept), "train_rows": len(out["train"]),
                   "eval_rows": len(out["eval"]), "train_documents": len(train_docs), "eval_documents": len(eval_docs),
                   "dropped": dict(dropped), "min_paragraph_chars": min_len}
        if raft:
            metrics["raft"] = {"rows_without_gold": sum(not c["lineage"]["gold_in_context"] for c in contexts),
                               "rows_short_of_distractors": short}
        write_json(resolve_path(DATASET_METRICS), metrics)
        log_metrics(metrics, prefix="dataset.")
        for side, context in (("train", "training"), ("eval", "evaluation")):
            log_dataset(resolve_path(dataset_path(DOMAIN_DIR, side)), f"domain-{side}", context)
        log.info("%s", metrics)


if __name__ == "__main__":
    run(main)

