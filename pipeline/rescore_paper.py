"""Rescore the paper's own answers with this project's scorer, so the paper's table and ours stand side by side.

    python -m pipeline.rescore_paper data=paper              # -> metrics/paper_rescored.json, results/paper_rescored.json
    python -m pipeline.rescore_paper data=paper data.published.dir=/data/david-goliath/paper_results

Stage rescore_paper. For each task (`data.published.files`: task -> file prefix) and model
(`data.published.models`) it reads the published per-question file `<dir>/<prefix>_results_<model>.csv`
(`question`, `model_response`, `context_chunk_1..3`, `inference_speed_seconds`, and the paper's own
`cosine_similarity`), takes the reference answers from the `gpt_response` column of the task's question file
(as the benchmark stage normalised it into `reference`, matched by question text), and scores
the answers exactly as `pipeline.score` scores ours: cosine, shuffled baseline, rescaled, discrimination,
token F1, ROUGE-L, grounding in the paper's retrieved chunks, recall@3/MRR of the source paragraph,
controls and paired differences. The paper's own mean cosine (instructor-large) is kept beside ours.
"""
from __future__ import annotations

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.errors import InputError
from sling.io import write_json
from sling.paths import PAPER_RESCORED, PAPER_RESCORED_TABLE, tasks
from sling.scoring.published import log, rescore_task
from sling.tracking.runs import log_artifact, log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("rescore_paper", cfg):
        scores, tables = {}, {}
        if not cfg.data.published.models:
            log.info("data.published.models is empty: data=%s has no published answers to rescore, so %s records "
                     "none (data=paper rescores the paper's)", cfg.data.name, PAPER_RESCORED)
        else:
            unknown = sorted(set(cfg.data.published.files) - set(tasks()))
            if unknown:
                raise InputError(f"data.published.files names tasks {unknown}; the benchmark's are {sorted(tasks())}")
            for task, task_file in cfg.data.published.files.items():
                scores[task], tables[task] = rescore_task(task, task_file, cfg.data.published, cfg.eval, cfg.seed)
        write_json(resolve_path(PAPER_RESCORED), scores)
        write_json(resolve_path(PAPER_RESCORED_TABLE), tables)
        log_metrics(scores, prefix="paper.")
        log_artifact(resolve_path(PAPER_RESCORED))
        for task, s in scores.items():
            for m, v in s["models"].items():
                log.info("%s %-11s paper cosine %.4f | ours: cosine %.3f (b=%.3f) rescaled %.3f F1 %.3f ROUGE-L %.3f "
                         "grounding %.2f", task, m, v["paper_cosine"], v["cosine"], v["baseline"], v["rescaled"],
                         v["token_f1"], v["rouge_l"], v["grounding"])


if __name__ == "__main__":
    run(main)

