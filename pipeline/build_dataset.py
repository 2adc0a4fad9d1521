"""Stage build_dataset: synthetic Q&A -> filtered, document-split, formatted domain training set.

    python -m pipeline.build_dataset
    python -m pipeline.build_dataset dataset.min_grounding=0.5

Filters, each counted in metrics/dataset.json: paragraphs shorter than the configured length percentile,
empty/malformed/refusing generations, near-duplicate questions within a document (embedding cosine),
answers not grounded in their paragraph (content-word overlap). The eval split, seeded, takes at most
dataset.eval_max_share of the rows: by document where whole documents fit (no document on both sides), by paragraph
otherwise (no paragraph on both sides); the manifest and metrics/dataset.json say which.
"""
from __future__ import annotations

from omegaconf import OmegaConf

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.data.dataset import log, raft_contexts, split_eval
from sling.data.formats import domain_prompt, record
from sling.data.questions import instruction, select
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
        kept, dropped, min_len = filter_rows(cfg.dataset, rows, instruction=instruction(cfg.synth.question_prompt))
        if any("question_type" in r for r in rows):  # several candidates per paragraph: the best valid ones
            chosen = select(kept, cfg.synth.questions_per_paragraph)
            dropped["per_paragraph"] = len(kept) - len(chosen)
            kept = chosen
        if not kept:
            raise InputError(f"every one of the {len(rows)} synthetic rows was filtered out ({dict(dropped)}); "
                             "loosen the dataset.* filters (e.g. dataset.min_grounding) or use a stronger teacher")
        split = split_eval(kept, cfg.dataset.eval_fraction, cfg.dataset.eval_max_share, cfg.seed)
        train_docs, eval_docs = split.documents(kept, "train"), split.documents(kept, "eval")
        if split.by == "paragraph":
            log.info("no whole document fits within dataset.eval_max_share (%s of %d rows): the eval split is by "
                     "paragraph", cfg.dataset.eval_max_share, len(kept))
        out = {"train": [], "eval": []}
        raft = cfg.dataset.raft.enabled
        contexts, short = (raft_contexts(cfg.dataset.raft, cfg.rag, cfg.seed, kept, split.sides) if raft
                           else ([None] * len(kept), 0))
        for r, ctx, side in zip(kept, contexts, split.sides):
            lineage = {k: r.get(k) for k in ("doc_id", "document", "page", "paragraph_hash", "teacher", "prompt_version")}
            if ctx is None:
                prompt, response = domain_prompt(cfg.dataset, cfg.rag, r["paragraph"], r["question"]), r["answer"]
            else:
                prompt = cfg.rag.prompt_template.format(context="\n\n".join(ctx["texts"]), question=r["question"])
                response = r["answer"] if ctx["lineage"]["gold_in_context"] else cfg.dataset.raft.absent_answer
                lineage["raft"] = ctx["lineage"]
            out[side].append(record(prompt, response, question=r["question"], seed=cfg.seed, **lineage))
        if short:
            log.warning("%d rows got fewer RAFT distractors than dataset.raft.distractors: too few other training "
                        "documents", short)
        if not out["eval"]:
            log.warning("the eval split is empty (%d rows kept, dataset.eval_fraction %s, dataset.eval_max_share %s): "
                        "eval loss is skipped", len(kept), cfg.dataset.eval_fraction, cfg.dataset.eval_max_share)
        for side, recs in out.items():
            write_jsonl(resolve_path(dataset_path(DOMAIN_DIR, side)), recs)
        names = {r["doc_id"]: r["document"] for r in kept}
        write_json(resolve_path(DOMAIN_SPLIT), {
            "train": {d: names[d] for d in train_docs}, "eval": {d: names[d] for d in eval_docs},
            **({"by": "paragraph", "eval_paragraphs": split.eval_paragraphs} if split.by == "paragraph" else {}),
            "provenance": provenance("build_dataset", OmegaConf.to_container(cfg.dataset, resolve=True) | {"seed": cfg.seed},
                                     {"synthetic": resolve_path(SYNTHETIC)})})
        metrics = {"input_rows": len(rows), "kept": len(kept), "train_rows": len(out["train"]),
                   "eval_rows": len(out["eval"]), "train_documents": len(train_docs), "eval_documents": len(eval_docs),
                   "dropped": dict(dropped), "min_paragraph_chars": min_len,
                   "split": {"by": split.by, "eval_share": round(len(out["eval"]) / len(kept), 4),
                             "eval_max_share": cfg.dataset.eval_max_share}}
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

