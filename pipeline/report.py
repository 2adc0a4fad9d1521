"""Stage report: one self-contained plotly HTML page a person opens, plus the summary table as JSON.

    python -m pipeline.report            # -> reports/report.html, metrics/report.json

Box plots of per-question scores per task and variant (like the paper's figure), the summary table
with intervals and controls, retrieval and latency panels, and a per-question table with the answers
and the retrieved chunks. The benchmark card and the verdict cite a person's audit of the questions
(data/benchmark/audit.jsonl, written by scripts/audit.py): the validity rate with its Wilson interval at eval.ci,
or "not audited by a person".
"""
from __future__ import annotations

import html

import pandas as pd
import plotly.express as px
import plotly.io as pio

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.io import atomic_write_text, read_json, write_json
from sling.paths import (
    AUDIT,
    BENCHMARK_METRICS,
    HEADLINE,
    LEAKAGE_METRICS,
    PAPER_RESCORED,
    QUESTION_SCORES_PLOT,
    REPORT,
    SCORES,
    produced,
)
from sling.scoring.audit import audit_of_benchmark
from sling.scoring.report import (
    benchmark_html,
    card_html,
    chunk_lengths,
    closed_book_html,
    forest_plot,
    headline,
    headline_html,
    log,
    paired_frame,
    paired_to_base,
    paper_frame,
    per_question_html,
    side_by_side,
    soundness_html,
    summary_frame,
)
from sling.environment import summary as where_it_ran
from sling.tracking.registry import register
from sling.tracking.runs import log_artifact, refresh_landing_view, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    with stage_run("report", cfg):
        scores = read_json(produced(SCORES, "score"))
        dist = pd.DataFrame(read_json(resolve_path(QUESTION_SCORES_PLOT)))
        summary = summary_frame(scores)
        figs = [px.box(dist, x="variant", y="cosine", color="variant", facet_col="task", points="all",
                       title="Cosine to the reference per question (the paper's score)"),
                px.box(dist, x="variant", y="token_f1", color="variant", facet_col="task", points="all",
                       title="Token F1 to the reference per question")]
        retrieval = pd.DataFrame([{"task": t, **{k: v for k, v in scores[t].get("retrieval", {}).items() if not isinstance(v, list)}}
                                  for t in scores])
        if "mrr" in retrieval:
            figs.append(px.bar(retrieval.melt(id_vars="task", value_vars=[c for c in retrieval.columns if c.startswith(("recall", "mrr"))]),
                               x="task", y="value", color="variable", barmode="group", title="Retrieval of the source paragraph"))
        lengths = chunk_lengths(list(scores))
        if lengths is not None:
            figs.append(px.histogram(lengths, x="n_tokens", facet_col="task", nbins=20,
                                     title=f"Chunk lengths in tokens per task (rag.chunking={cfg.rag.chunking})"))
        lat = summary[summary.kind == "variant"].dropna(subset=["latency s"])
        if len(lat):
            figs.append(px.bar(lat, x="name", y="latency s", color="task", barmode="group", title="Seconds per answer (batched)"))
        base = "base" if "base" in cfg.rag.variants else cfg.rag.variants[0]
        paired = paired_to_base(scores, base)
        if len(paired):
            figs.insert(0, forest_plot(paired))
        bench_path, leak_path = resolve_path(BENCHMARK_METRICS), resolve_path(LEAKAGE_METRICS)
        audit = audit_of_benchmark(resolve_path(AUDIT), cfg.eval.ci)
        card = card_html(read_json(bench_path) if bench_path.exists() else {},
                         read_json(leak_path) if leak_path.exists() else None, audit.line())
        parts = [f"<h1>sling benchmark: {html.escape(str(cfg.data.name))} data, {html.escape(str(cfg.model.name))}</h1>",
                 card, headline_html(scores, paired, base, audit.line()), benchmark_html(scores), closed_book_html(scores), "<h2>Summary</h2>", summary.to_html(index=False, float_format=lambda x: f"{x:.3f}"),
                 "<h2>Paired differences between variants (per question, bootstrap 95% CI)</h2>",
                 paired_frame(scores).to_html(index=False, float_format=lambda x: f"{x:.3f}")]
        published = read_json(resolve_path(PAPER_RESCORED))
        if published:
            parts = parts[:3] + [
                "<h2>The published answers and ours, side by side</h2>",
                "<p>The published models' own answer files (stage rescore_paper: for data=paper, the paper's phi-1.5, "
                "phipaca and saiphipaca on a T4) and this run's variants, scored by the same scorer against the same "
                "reference answers. 'published cosine' is the paper's own number (instructor-large embeddings); "
                "every other column is ours. Latency: the paper's per question, one at a time; ours per question in "
                "batches on this machine.</p>",
                side_by_side(scores, published, str(cfg.model.name)).to_html(
                    index=False, na_rep="", float_format=lambda x: f"{x:.3f}")] + parts[3:]
            parts += ["<h2>The published answers rescored, with controls</h2>",
                      paper_frame(published).to_html(index=False, float_format=lambda x: f"{x:.3f}")]
        else:
            parts.append(f"<p>No published answers to compare with: data.published.models is empty for "
                         f"data={html.escape(str(cfg.data.name))} (data=paper rescores the paper's).</p>")
        parts.append(soundness_html(scores, published))
        # named divs: plotly's default names are random, and the report must be the same bytes on a re-run
        parts += [pio.to_html(f, include_plotlyjs="cdn" if i else True, full_html=False, div_id=f"figure-{i}")
                  for i, f in enumerate(figs)]
        for task in scores:
            parts += [f"<h2>Per question: {html.escape(task)}</h2>", per_question_html(cfg, task)]
        parts.append(f"<footer><p>Where this report was made: {html.escape(where_it_ran())}.</p></footer>")
        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>sling report</title><style>"
                "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:13px}"
                "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;max-width:420px}</style></head><body>"
                + "\n".join(parts) + "</body></html>")
        atomic_write_text(resolve_path(REPORT), page)
        top = headline(scores, read_json(leak_path) if leak_path.exists() else {}) | audit.headline()
        write_json(resolve_path(HEADLINE), top)
        log_artifact(resolve_path(REPORT))
        log.info("wrote %s", resolve_path(REPORT))
        # last, with the headline on disk: the student in the Model Registry, and the UI's landing view of the runs
        register(cfg, top)
        refresh_landing_view()


if __name__ == "__main__":
    run(main)

