"""Stage score: every variant's answers against the reference, with baselines, controls and intervals.

    python -m pipeline.score

Per variant and task (see ../shared/guide/EVALUATION.md for why each is here): raw embedding cosine to the
reference (the paper's number), the shuffled baseline b (mean cosine of mismatched pairs), the rescaled
score (x - b) / (1 - b), the discrimination rate, token F1 and ROUGE-L (each also rescaled by its own shuffled
baseline), grounding in the retrieved chunks,
retrieval recall@k and MRR against the question's source paragraph, latency and tokens/s. Means carry
bootstrap intervals; variants are compared by paired differences; the controls (reference as answer,
shuffled reference, empty answer) are scored the same way, and a metric on which some variant does not beat the
shuffled-reference floor is flagged as unsound (`soundness` in metrics/scores.json).
"""
from __future__ import annotations

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.io import write_json
from sling.paths import (
    PER_QUESTION,
    QUESTION_SCORES_PLOT,
    SCORES,
    VARIANT_SCORES_PLOT,
    tasks,
)
from sling.scoring.metrics import log, question_points, score_task, variant_bars
from sling.tracking.runs import log_artifact, log_headline, log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("score", cfg):
        scores, table = {}, {}
        for task in tasks():
            scores[task], table[task] = score_task(cfg, task)
        write_json(resolve_path(SCORES), scores)
        write_json(resolve_path(PER_QUESTION), table)
        write_json(resolve_path(QUESTION_SCORES_PLOT), question_points(table, list(cfg.rag.variants)))
        write_json(resolve_path(VARIANT_SCORES_PLOT), variant_bars(scores))
        log_metrics(scores, prefix="score.")
        log_headline({task: {v: {k: m[k] for k in ("cosine", "rescaled", "token_f1", "token_f1_rescaled", "grounding")}
                             for v, m in s["variants"].items()} for task, s in scores.items()})
        log_artifact(resolve_path(SCORES))
        log_artifact(resolve_path(PER_QUESTION))
        for task in scores:
            for v, s in scores[task]["variants"].items():
                log.info("%s %-8s cosine %.3f (b=%.3f) rescaled %.3f F1 %.3f ROUGE-L %.3f grounding %.2f", task, v,
                         s["cosine"], s["baseline"], s["rescaled"], s["token_f1"], s["rouge_l"], s["grounding"])


if __name__ == "__main__":
    run(main)

