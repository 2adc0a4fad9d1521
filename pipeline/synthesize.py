"""Stage synthesize: paragraphs -> synthetic question/answer pairs written by a teacher.

    python -m pipeline.synthesize                                      # reads params.yaml
    OPENAI_API_KEY=... python -m pipeline.synthesize teacher=openai teacher.base_url=http://localhost:8000/v1

Per paragraph the paper's two steps: the teacher writes a question the paragraph answers, then answers
it from the paragraph alone (prompts and their version: synth.*), both in the language ingest detected for
the paragraph's document. Every reply is cached by content
(teacher, prompt version, prompt, generation parameters) the moment it arrives, so a re-run or a resume
after a crash asks nothing twice. With `data.domain_source=sai_csv` the paper's own synthetic set is
imported instead of calling a teacher.
"""
from __future__ import annotations

from omegaconf import OmegaConf

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.data.importers import read_sai_csv
from sling.data.synthesis import (
    SynthesisError,
    log,
    long_enough,
    spread,
    synthesize,
    training_paragraphs,
)
from sling.io import provenance, read_json, read_jsonl, write_json, write_jsonl
from sling.paths import (
    PARAGRAPHS,
    SPLIT,
    SYNTHESIZE_METRICS,
    SYNTHETIC,
    SYNTHETIC_PROVENANCE,
)
from sling.tracking.runs import log_dataset, log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("synthesize", cfg):
        if cfg.data.domain_source == "sai_csv":
            rows, skipped = read_sai_csv(resolve_path(cfg.data.sai_csv))
            for r in rows:
                r.update(teacher="paper:gpt-4", prompt_version="paper", seed=cfg.seed, question_index=0)
            stats = {"rows": len(rows), "imported_from": str(cfg.data.sai_csv), "skipped_malformed": sum(skipped.values()),
                     "skipped_by_reason": dict(skipped), "calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                     "estimated_cost_usd": 0.0}
        else:
            if not resolve_path(SPLIT).exists():
                raise SynthesisError(f"{resolve_path(SPLIT)} is missing: the benchmark stage writes which documents "
                                     "train; run it first (`dvc repro synthesize` runs both)")
            paragraphs = training_paragraphs(read_jsonl(resolve_path(PARAGRAPHS)), read_json(resolve_path(SPLIT)))
            short = 0
            if cfg.synth.min_paragraph_chars:
                asked = long_enough(paragraphs, cfg.synth.min_paragraph_chars)
                short, paragraphs = len(paragraphs) - len(asked), asked
            if cfg.synth.max_paragraphs:
                paragraphs = spread(paragraphs, cfg.synth.max_paragraphs)
            rows, stats = synthesize(cfg, paragraphs)
            if cfg.synth.min_paragraph_chars:
                stats["short_paragraphs_not_asked"] = short
        if not rows:
            raise SynthesisError("the teacher produced no question/answer pair; see the warnings above")
        write_jsonl(resolve_path(SYNTHETIC), rows)
        write_json(resolve_path(SYNTHESIZE_METRICS), stats)
        write_json(resolve_path(SYNTHETIC_PROVENANCE), provenance(
            "synthesize", {"synth": OmegaConf.to_container(cfg.synth, resolve=True),
                           "teacher": {k: v for k, v in OmegaConf.to_container(cfg.teacher, resolve=True).items()}},
            {"paragraphs": resolve_path(PARAGRAPHS), "split": resolve_path(SPLIT)} if cfg.data.domain_source == "synthesize" else {}))
        log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))}, prefix="synth.")
        log_dataset(resolve_path(SYNTHETIC), "synthetic-qa", "source")
        log.info("%d rows: %s", len(rows), stats)


if __name__ == "__main__":
    run(main)

