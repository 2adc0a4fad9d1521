"""The report's parts: the summary and paired tables, verdict lines with their question and seed counts, the forest
plot, the soundness, closed-book, benchmark-card and per-question sections, and the headline written to
metrics/report.json. Entry point: `pipeline/report.py`.
"""
from __future__ import annotations

import html
import logging
from pathlib import Path

import pandas as pd
import plotly.express as px

from sling.config import resolve_path
from sling.io import read_json, read_jsonl
from sling.paths import (
    CHUNKS,
    LEAKAGE_METRICS,
    PER_QUESTION,
    answers_path,
    tasks,
    train_metrics_path,
)

log = logging.getLogger("report")


def summary_frame(scores: dict) -> pd.DataFrame:
    rows = []
    for task, s in scores.items():
        for group, entries in (("variant", s["variants"]), ("control", s["controls"])):
            for name, m in entries.items():
                rows.append({"task": task, "kind": group, "name": name, "cosine": m["cosine"], "baseline": m["baseline"],
                             "rescaled": m["rescaled"], "rescaled 95% CI": m["rescaled_ci"], "discrimination": m["discriminated"],
                             "token F1": m["token_f1"], "token F1 rescaled": m["token_f1_rescaled"],
                             "token F1 rescaled 95% CI": m["token_f1_rescaled_ci"], "ROUGE-L": m["rouge_l"],
                             "ROUGE-L rescaled": m["rouge_l_rescaled"], "grounding": m["grounding"],
                             "unsupported sentences": round(1 - m["grounding"], 4),
                             "latency s": m.get("latency_s"), "tokens/s": m.get("tokens_per_s")})
    return pd.DataFrame(rows)


def recall(retrieval: dict):
    """recall@k from a retrieval summary, whatever k was."""
    return next((v for k, v in retrieval.items() if k.startswith("recall_at")), None)


def paper_frame(paper: dict) -> pd.DataFrame:
    """The paper's table (its own mean cosine) beside the same answers rescored by this project's scorer."""
    rows = []
    for task, s in paper.items():
        for name, m in list(s["models"].items()) + [(f"control: {k}", v) for k, v in s["controls"].items()]:
            r = m.get("retrieval", {})
            rows.append({"task": task, "model": name, "paper's cosine (instructor-large)": m.get("paper_cosine"),
                         "cosine (ours)": m["cosine"], "baseline": m["baseline"], "rescaled": m["rescaled"],
                         "rescaled 95% CI": m["rescaled_ci"], "discrimination": m["discriminated"],
                         "token F1": m["token_f1"], "token F1 rescaled": m["token_f1_rescaled"],
                         "token F1 rescaled 95% CI": m["token_f1_rescaled_ci"], "ROUGE-L": m["rouge_l"],
                         "grounding": m["grounding"], "recall@3": recall(r),
                         "latency s (paper, T4)": m.get("latency_s")})
    return pd.DataFrame(rows)


def side_by_side(scores: dict, paper: dict, model_name: str) -> pd.DataFrame:
    """One table per task: the published models' answers and ours, scored the same way against the same references."""
    rows = []
    for task in scores:
        if task not in paper:
            continue
        theirs = [("published", paper[task]["questions"], name, m, m.get("retrieval", {}))
                  for name, m in paper[task]["models"].items()]
        ours = [(f"ours ({model_name})", scores[task]["questions"], name, m, scores[task].get("retrieval", {}))
                for name, m in scores[task]["variants"].items()]
        for source, n, name, m, r in theirs + ours:
            rows.append({"task": task, "answers": source, "model": name, "questions": n,
                         "published cosine": m.get("paper_cosine"), "cosine": m["cosine"], "rescaled": m["rescaled"],
                         "rescaled 95% CI": m["rescaled_ci"], "discrimination": m["discriminated"],
                         "token F1": m["token_f1"], "token F1 rescaled": m["token_f1_rescaled"],
                         "ROUGE-L": m["rouge_l"], "grounding": m["grounding"], "recall@k": recall(r),
                         "latency s": m.get("latency_s")})
    return pd.DataFrame(rows)


VERDICT = {1: "beats the base", -1: "is worse than the base", 0: "is not distinguishable from the base"}


HEADLINE_METRICS = {"rescaled": "rescaled cosine", "token_f1_rescaled": "rescaled token F1", "grounding": "grounding"}


def paired_to_base(scores: dict, base: str) -> pd.DataFrame:
    """Each tuned variant minus the base, per task and headline metric, with its paired 95% interval."""
    rows = []
    for task, s in scores.items():
        for name in s["variants"]:
            pair = s["paired"].get(f"{name}-{base}")
            if name == base or pair is None:
                continue
            for metric, label in HEADLINE_METRICS.items():
                d = pair[metric]
                lo, hi = d["ci"]
                rows.append({"task": task, "variant": name, "metric": label, "key": metric, "mean": d["mean"],
                             "lo": lo, "hi": hi, "sign": 1 if lo > 0 else -1 if hi < 0 else 0,
                             "per_seed": d.get("per_seed") or [], "seeds": len(d.get("per_seed") or []) or 1})
    return pd.DataFrame(rows)


def power_line(s: dict) -> tuple[str, bool]:
    """What the task's question count can tell, in words, and whether a verdict may be given at all."""
    p = s.get("power")
    if not p:
        return "", True
    detect = p.get("detectable_rescaled")
    count = f"{p['questions']} paired question{'s' if p['questions'] != 1 else ''}"
    can = (f"; {count} detect a difference of about {detect:.2f} rescaled cosine (80% power)" if detect is not None
           else f"; {count}: too few to measure how answers spread (the count needed below assumes eval.paired_sd)")
    if p["verdict_allowed"]:
        return can + ".", True
    more = p.get("questions_for_target")
    need = (f"; to detect {p['target_difference']:.2f} the documents would need about {more} questions "
            f"({more - p['questions']} more)" if more else "")
    return (f"{can}. <b>Too few questions to tell</b>: {p['questions']} is below eval.min_questions "
            f"({p['min_questions']}), so no variant is called better or worse{need}."), False


def headline_html(scores: dict, paired: pd.DataFrame, base: str, audit: str) -> str:
    """Per task, computed from the scores: the best variant on each headline metric, and whether each tuned variant
    beats the base by a paired 95% interval that excludes zero, with how many questions stand behind the verdict and
    the smallest difference they could detect; below `eval.min_questions` questions, no verdict. Unsound metrics say
    so. Last, how valid a person found the benchmark's questions (`audit`: `sling.scoring.audit.Audit.line`)."""
    out = ["<h2>Headline</h2><ul>"]
    for task, s in scores.items():
        v, sound = s["variants"], s.get("soundness", {})
        best = "; ".join(f"on {label}: <b>{html.escape(max(v, key=lambda n: v[n][k]))}</b> "
                         f"({max(x[k] for x in v.values()):.3f})"
                         + ("" if sound.get(k, {}).get("sound", True) else " (metric flagged unsound, see below)")
                         for k, label in list(HEADLINE_METRICS.items())[:2])
        said, allowed = power_line(s)
        lines = [f"<li><b>{html.escape(task)}</b> ({s['questions']} questions), best {best}{said}"]
        rows = paired[paired.task == task] if len(paired) else paired
        for _, r in rows[rows.key != "grounding"].iterrows() if len(rows) else []:
            verdict = VERDICT[r.sign] if allowed else "differs from the base by (no verdict)"
            seeds = f", {r.seeds} training seeds" if r.seeds > 1 else ", 1 training seed"
            lines.append(f"<br>{html.escape(r.variant)} {verdict} on {r.metric}: {r['mean']:+.3f} "
                         f"[{r.lo:+.3f}, {r.hi:+.3f}] ({s['questions']} questions{seeds})")
        gain = s.get("retrieval_gain")
        if gain:
            lines.append("<br>What retrieval adds (RAG minus closed-book, rescaled cosine): " + ", ".join(
                f"{html.escape(n)} {g['rescaled']['mean']:+.3f} [{g['rescaled']['ci'][0]:+.3f}, "
                f"{g['rescaled']['ci'][1]:+.3f}]" for n, g in gain.items())
                + f"; {s['easy_questions']['count']} of {s['questions']} questions are easy "
                  f"({html.escape(s['easy_questions']['rule'])}).")
        hallucination = ", ".join(f"{html.escape(n)} {1 - m['grounding']:.2f}" for n, m in v.items())
        lines.append(f"<br>Share of answer sentences not supported by the retrieved chunks (hallucination): "
                     f"{hallucination}.</li>")
        out.append("".join(lines))
    out.append(f"</ul><p>Differences are per question, paired, with bootstrap 95% intervals, against {base}. "
               f"The questions behind these verdicts: {html.escape(audit)}.</p>")
    return "".join(out)


def forest_plot(paired: pd.DataFrame):
    """The paired differences to the base as a forest plot: one row per task and variant, one panel per metric."""
    df = paired.assign(row=paired.task + ": " + paired.variant, plus=paired.hi - paired["mean"],
                       minus=paired["mean"] - paired.lo)
    seeds = int(df.seeds.max()) if len(df) else 1
    how = "seeds, then questions" if seeds > 1 else "questions"
    fig = px.scatter(df, x="mean", y="row", error_x="plus", error_x_minus="minus", facet_col="metric",
                     color="variant", title=f"Tuned variant minus base, pooled over {seeds} training seed(s) "
                                            f"(paired bootstrap 95% CI over {how}; hollow marks: each seed)")
    points = df[df.seeds > 1].explode("per_seed")
    if len(points):
        for trace in px.scatter(points, x="per_seed", y="row", facet_col="metric", color="variant").data:
            trace.update(marker={"symbol": "circle-open", "size": 9}, showlegend=False)
            fig.add_trace(trace, row=1, col=int(trace.xaxis[1:] or 1) if trace.xaxis != "x" else 1)
    fig.add_vline(x=0, line_dash="dash", line_color="gray")
    return fig


def soundness_html(scores: dict, published: dict) -> str:
    """The metrics whose floor control (a shuffled reference) is not below every model: flagged, not trusted."""
    rows = [{"task": task, "answers": who, "metric": metric, "floor (shuffled reference)": s["floor"],
             "models at or below the floor": ", ".join(s["at_or_below_floor"])}
            for who, source in (("ours", scores), ("published", published or {}))
            for task, result in source.items() for metric, s in result.get("soundness", {}).items() if not s["sound"]]
    head = ("<h2>Metric soundness</h2><p>A metric is sound on a task when every model scores above its floor "
            "control, a reference to another question given as the answer. Where it is not, that metric cannot tell "
            "those answers from answers to other questions, and its numbers above should not be read as a ranking.</p>")
    if not rows:
        return head + "<p>Every metric beats its floor control for every model on every task.</p>"
    return head + pd.DataFrame(rows).to_html(index=False, float_format=lambda x: f"{x:.3f}")


def closed_book_html(scores: dict) -> str:
    """Each variant with and without retrieval, and what retrieval adds, per task."""
    rows = [{"task": task, "variant": v, "RAG rescaled": s["variants"][v]["rescaled"],
             "closed-book rescaled": cb["rescaled"], "RAG minus closed-book": s["retrieval_gain"][v]["rescaled"]["mean"],
             "95% CI": s["retrieval_gain"][v]["rescaled"]["ci"], "RAG token F1 rescaled": s["variants"][v]["token_f1_rescaled"],
             "closed-book token F1 rescaled": cb["token_f1_rescaled"]}
            for task, s in scores.items() for v, cb in s.get("closed_book", {}).items()]
    if not rows:
        return "<p>No closed-book arm (rag.closed_book=false).</p>"
    easy = "; ".join(f"{html.escape(t)}: {', '.join(s['easy_questions']['ids']) or 'none'}"
                     for t, s in scores.items() if s.get("easy_questions"))
    return ("<h2>Closed-book arm: what retrieval adds</h2><p>Every variant also answered every question with no "
            "retrieved context (rag.closed_book_template), scored the same way.</p>"
            + pd.DataFrame(rows).to_html(index=False, float_format=lambda x: f"{x:.3f}")
            + f"<p>Easy questions (the base model answers them closed-book): {easy}.</p>")


def paired_frame(scores: dict) -> pd.DataFrame:
    return pd.DataFrame([{"task": task, "difference": pair, "metric": k, "mean": v["mean"], "95% CI": v["ci"],
                          "detectable (80% power)": v.get("detectable")}
                         for task, s in scores.items() for pair, d in s["paired"].items() for k, v in d.items()])


def chunk_lengths(tasks: list[str]) -> pd.DataFrame | None:
    rows = [{"task": task, "n_tokens": c["n_tokens"]} for task in tasks
            if resolve_path(CHUNKS.format(task=task)).exists() for c in read_jsonl(resolve_path(CHUNKS.format(task=task)))]
    return pd.DataFrame(rows) if rows else None


FILTER_GROUP = {"not_a_question": "validity", "points_at_source": "validity", "reference_repeats_question": "validity",
                "question_copies_paragraph": "validity", "critic_low_score": "critic", "critic_unparsed": "critic",
                "ungrounded_answer": "grounding", "hop_names_one_paragraph": "hop check",
                "hop_one_paragraph_suffices": "hop check", "not_findable": "round trip",
                "per_paragraph": "selection", "per_pair": "selection"}


def candidates_line(bench: dict) -> str:
    """The card's sentence on candidates and selection: references, question types (candidates and kept), the BM25
    round trip, and the multi-hop questions with the hop check; empty for a card from before them."""
    if "question_types" not in bench:
        return ""
    mix = ", ".join(f"{t} {v['kept']} of {v['candidates']}" for t, v in bench["question_types"].items())
    parts = [f"References: {bench['reference']}. Question types, kept of candidates: {mix}."]
    if bench.get("findable_top_k"):
        k = bench.get("findable_k") or bench["findable_top_k"]
        pool = f" of the {bench['benchmark_paragraphs']} benchmark paragraphs" if bench.get("benchmark_paragraphs") else ""
        parts.append(f"Round trip: {bench['dropped'].get('not_findable', 0)} candidate(s) whose source paragraph an "
                     f"independent BM25 retriever did not rank in its top {k}{pool} were dropped.")
    m = bench.get("multihop")
    if m:
        how = {"compose": " (composed: a kept question of each of two linked paragraphs, asked together)",
               "teacher": " (the teacher's, one question over two paragraphs)"}.get(m.get("method"), "")
        parts.append(f"Multi-hop{how}: {m['pairs']} paragraph pairs, {m['candidates']} candidates, "
                     f"{m['dropped_by_hop_check']} dropped by the hop check (one paragraph alone would answer), "
                     f"{m['kept']} kept (aiming at {m['aimed']}).")
    return " ".join(parts)


def card_html(bench: dict, leak: dict | None, audit: str) -> str:
    """The benchmark card: questions per task, candidates before and after each filter (grouped as validity, critic,
    grounding, other), the critic's score distribution, the leakage count, a person's audit of the questions (`audit`:
    `sling.scoring.audit.Audit.line`) and a few sampled questions per task."""
    out = ["<h2>Benchmark card</h2>"]
    per_task = ", ".join(f"{html.escape(t)}: {n}" for t, n in bench.get("tasks", {}).items())
    out.append(f"<p>Questions per task: {per_task or 'none'}.")
    if bench.get("funnel"):
        out.append(f" The teacher ({html.escape(str(bench.get('teacher')))}) wrote {bench['generated']} candidates "
                   f"from {bench['sampled_paragraphs']} paragraphs in {bench['rounds']} round(s); "
                   f"{bench['kept']} were kept. {html.escape(candidates_line(bench))}</p>")
        rows = [{"filter": f["filter"], "group": FILTER_GROUP.get(f["filter"], "other"), "before": f["before"],
                 "dropped": f["before"] - f["after"], "after": f["after"]} for f in bench["funnel"]]
        out.append(pd.DataFrame(rows).to_html(index=False))
        critic = bench.get("critic", {})
        if critic.get("enabled"):
            dist = ", ".join(f"{k}: {v}" for k, v in critic["scores"].items())
            out.append(f"<p>Critic scores (the lowest of clarity, answerability, faithfulness; kept from "
                       f"{critic['min_score']}): {html.escape(dist)}.</p>")
        else:
            out.append("<p>The critic was off (benchmark.critic.enabled).</p>")
    else:
        flags = bench.get("flagged_questions") or {}
        out.append(" The questions are the profile's own (hand-written or published): the validity checks flag, "
                   "never drop, them" + (": " + html.escape(", ".join(f"{q} ({why})" for q, why in flags.items()))
                                         if flags else "; none is flagged") + ".</p>")
    if leak:
        out.append(f"<p>Leakage: {leak['leaked']} of {leak['benchmark_questions']} benchmark questions.</p>")
    out.append(f"<p>Validity audit (scripts/audit.py): {html.escape(audit)}.</p>")
    for task, sample in bench.get("card_samples", {}).items():
        out.append(f"<p><b>{html.escape(task)}</b>, sampled questions:</p><ul>" + "".join(
            f"<li>{html.escape(q['question'])}<br><i>reference:</i> {html.escape(q['reference'])}</li>"
            for q in sample) + "</ul>")
    return "\n".join(out)


def benchmark_html(scores: dict) -> str:
    """The tasks, what each was scored against, the references left out, and the leakage check."""
    rows = []
    for task, s in scores.items():
        ref = s.get("references", {})
        listing = tasks().get(task, {})
        rows.append({"task": task, "documents": ", ".join(Path(d).name for d in listing.get("documents", [])),
                     "language": ", ".join(listing.get("languages") or []) or "not detected",
                     "questions scored": s["questions"], "reference": ref.get("source"),
                     "references left out": ", ".join(f"{q} ({why})" for q, why in ref.get("excluded_ids", {}).items())})
    out = ["<h2>The benchmark</h2>", pd.DataFrame(rows).to_html(index=False)]
    leak_path = resolve_path(LEAKAGE_METRICS)
    if leak_path.exists():
        leak = read_json(leak_path)
        out.append(f"<p>Leakage between the training set and the benchmark ({LEAKAGE_METRICS}): "
                   f"{leak['leaked']} of {leak['benchmark_questions']} benchmark questions leak "
                   f"({leak['near_duplicate_questions']} near-duplicate of a training question at cosine &ge; "
                   f"{leak['question_cosine']}, {leak['paragraph_overlap']} with their source paragraph in the training "
                   f"set); documents in both: {html.escape(', '.join(leak['shared_documents']) or 'none')}.</p>")
    return "\n".join(out)


def per_question_html(cfg, task: str) -> str:
    variants = list(cfg.rag.variants)
    rows = read_jsonl(resolve_path(answers_path(variants[0], task)))
    answers = {v: read_jsonl(resolve_path(answers_path(v, task))) for v in variants + ["reference"]}
    scored = resolve_path(PER_QUESTION)
    table = {q["id"]: q for q in (read_json(scored).get(task, []) if scored.exists() else [])}
    out = ["<table class='q'><tr><th>question</th><th>reference</th>" + "".join(f"<th>{v}</th>" for v in variants)
           + "<th>retrieved chunks</th></tr>"]
    for i, r in enumerate(rows):
        chunks = "".join(f"<details><summary>{html.escape(c['document'])} p.{c['pages']} score {c['score']}</summary>"
                         f"{html.escape(c['text'])}</details>" for c in r["retrieved"])
        easy = " <i>(easy: the base model answers it closed-book)</i>" if table.get(r["id"], {}).get("easy") else ""
        out.append(f"<tr><td>{html.escape(r['question'])}{easy}</td><td>{html.escape(answers['reference'][i]['answer'])}</td>"
                   + "".join(f"<td>{html.escape(answers[v][i]['answer'])}</td>" for v in variants) + f"<td>{chunks}</td></tr>")
    return "\n".join(out) + "</table>"


HEADLINE_SCORES = ("rescaled", "token_f1_rescaled", "grounding")


def headline(scores: dict, leakage: dict) -> dict:
    """What `dvc exp show` and `dvc metrics diff` list: per task its size, retrieval recall, each variant's rescaled
    cosine, rescaled token F1 and grounding, and each tuned variant minus the base on rescaled cosine (mean and the
    paired interval's bounds); each adapter's last train and eval loss; the leakage count. About 40 numbers on the
    default profile: the detail stays in metrics/scores.json and the other stages' files, the report and MLflow."""
    out: dict = {}
    for task, s in scores.items():
        node = {"questions": s.get("questions")}
        node |= {k: v for k, v in s.get("retrieval", {}).items() if k.startswith("recall_at_")}
        for variant, m in s["variants"].items():
            node[variant] = {k: m[k] for k in HEADLINE_SCORES if k in m}
        for pair, d in s.get("paired", {}).items():
            if pair.endswith("-base") and isinstance(d.get("rescaled"), dict):
                lo, hi = d["rescaled"]["ci"]
                node[pair] = {"mean": d["rescaled"]["mean"], "low": lo, "high": hi}
        out[task] = node
    adapters = {}
    for stage in ("general", "domain"):
        path = resolve_path(train_metrics_path(stage))
        if path.exists():
            m = read_json(path)
            adapters[stage] = {k: m[k] for k in ("train_loss", "eval_loss") if m.get(k) is not None}
    out["adapters"] = adapters
    if "leaked" in leakage:
        out["leaked_questions"] = leakage["leaked"]
    return out

