"""Regenerate the generated sections of the README and the docs pages from the repository's own commands, never by
hand.

    python scripts/update_readme.py            # the results table of the workspace run (metrics/*.json)
    python scripts/update_readme.py --exps     # also the experiments table (dvc exp show --md)
    python scripts/update_readme.py --study    # also the study's results and headline, the README's headline and
                                               # summary, and the study's forest plot (results/study/, written by
                                               # scripts/study.py)
    python scripts/update_readme.py --documents    # also the real-documents run (results/documents/, written by
                                                   # scripts/documents_run.py)
    python scripts/update_readme.py --scale        # also the 10,000-paper estimate (scripts/scale_estimate.py)
    python scripts/update_readme.py --export       # also the export gate's figures (metrics/export/<variant>.json,
                                                   # written by python -m pipeline.export <variant>)
    python scripts/update_readme.py --config       # also the configuration reference (scripts/config_reference.py)

Each section sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers, in README.md or one
page under docs/ (PAGES finds it), and records the command that produced it; `--NAME-table` (and `--table` for
`metrics`) prints a section instead of writing it. tests/test_readme.py and tests/test_docs.py check each committed
section against its command's output now.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FIGURE = DOCS / "assets" / "study_forest.svg"  # the study's forest plot, shown by the README and the docs
from sling.paths import (
    DOCUMENTS_RUN,
    PAPER_RESCORED,
    SCORES,
    STUDY_DIR,
    export_metrics_path,
    train_metrics_path,
)


def run(cmd: list[str]) -> str:
    cmd = [sys.executable, *cmd[1:]] if cmd[0] == "python" else cmd
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def pages() -> list[Path]:
    """The files that may hold generated sections: the README and every docs page."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def page_of(name: str) -> Path:
    """The one file holding the `<!-- generated:NAME -->` section."""
    found = [p for p in pages() if f"<!-- generated:{name} -->" in p.read_text()]
    if len(found) != 1:
        where = ", ".join(p.relative_to(ROOT).as_posix() for p in found) or "no page"
        raise SystemExit(f"<!-- generated:{name} --> must be in exactly one of README.md and docs/*.md, "
                         f"found in {where}")
    return found[0]


def replace(text: str, name: str, body: str, cmd: str) -> str:
    block = f"<!-- generated:{name} -->\n_Produced by `{cmd}`._\n\n{body}\n<!-- /generated:{name} -->"
    pattern = re.compile(rf"<!-- generated:{name} -->.*?<!-- /generated:{name} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"the page has no <!-- generated:{name} --> section")
    return pattern.sub(lambda _: block, text)


def scores_table() -> str:
    """metrics/scores.json and the training metrics as one compact markdown table per task."""
    scores = json.loads((ROOT / SCORES).read_text())
    train = {s: json.loads((ROOT / train_metrics_path(s)).read_text()) for s in ("general", "domain")}
    lines = ["| task | variant | cosine | rescaled | token F1 | token F1 rescaled |",
             "| --- | --- | --- | --- | --- | --- |"]
    for task, node in scores.items():
        for variant, m in node["variants"].items():
            lines.append(f"| {task} | {variant} | {m['cosine']:.3f} | {m['rescaled']:.3f} | {m['token_f1']:.3f} | "
                         f"{m['token_f1_rescaled']:.3f} |")
    # Timings (tokens/s, wall time) stay in metrics/ only: they change with every run, the scores do not.
    lines += ["", "| adapter | first loss | last loss | eval loss | steps |", "| --- | --- | --- | --- | --- |"]
    for stage, m in train.items():
        lines.append(f"| {stage} | {m['train_loss_first']:.3f} | {m['train_loss']:.3f} | {m['eval_loss']:.3f} | {m['steps']} |")
    return "\n".join(lines)


STUDY = ROOT / STUDY_DIR
VERDICT = {1: "beats the base", -1: "is worse than the base", 0: "is not distinguishable from the base"}


def interval(ci: list[float]) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def signed(d: dict) -> str:
    lo, hi = d["ci"]
    return f"{d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def sign(d: dict) -> int:
    lo, hi = d["ci"]
    return 1 if lo > 0 else -1 if hi < 0 else 0


def study_section() -> str:
    """results/study/ (scripts/study.py) as tables and a headline, every figure read from its files."""
    study = json.loads((STUDY / "study.json").read_text())
    scores = json.loads((STUDY / "scores.json").read_text())
    published = {}
    rescored = STUDY / "context" / PAPER_RESCORED
    if rescored.exists():
        published = json.loads(rescored.read_text())
    main = ["base", "general", "domain", "domain_raft"]
    seed_counts = {len(p["rescaled"].get("per_seed") or [None]) for s in scores.values()
                   for k, p in s["paired"].items() if k.endswith("-base")}
    sweep = [v for v in study["variants"] if v not in main]
    # a run made at another commit than the combining one (a sweep point added later) names its own
    ran = [f"{n} {r['wall_s'] / 60:.0f} min" + (f" with {1 + len(r['extra_seeds'])} seeds" if r.get("extra_seeds") else "")
           + (f" at `{r['commit'][:10]}`" if r.get("commit") and r["commit"] != study["commit"] else "")
           for n, r in study["runs"].items()]
    lines = [f"Command: `{study['command']}`, combined at commit `{study['commit'][:10]}`, {study['cpu_count']} CPU cores, "
             f"{study['wall_s'] / 3600:.1f} h for its {len(study['runs'])} runs (" + ", ".join(ran) + "). "
             "Variants: `base` SmolLM2-135M-Instruct, `general` +Alpaca adapter, `domain` +general+SAI adapter "
             "(the paper's prompts: the gold paragraph alone), `domain_raft` +general+SAI adapter (RAFT prompts); "
             "every answer scored against the paper's gpt-3.5-turbo references; the paper's own answers rescored "
             "by the same scorer. Rescaled: (x - b) / (1 - b) with b the shuffled-reference baseline of the same "
             "answers; brackets: bootstrap 95% intervals over questions"
             + ("" if seed_counts <= {1} else
                " (for a variant with several training seeds, the seed count beside its name: over seeds, then "
                "questions; its score the mean over seeds)") + ".", "",
             "| task | answers | rescaled cosine | token F1 rescaled | unsupported sentences | recall@3 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for task, s in scores.items():
        r = s.get("retrieval", {})
        rec = next((v for k, v in r.items() if k.startswith("recall_at")), None)
        rec_text = "" if rec is None else f"{rec:.2f}"
        for v in [v for v in main if v in s["variants"]]:
            m = s["variants"][v]
            n_seeds = len(m.get("per_seed") or [None])
            label = f"{v} ({n_seeds} seeds)" if n_seeds > 1 else v
            lines.append(f"| {task} | ours: {label} | {m['rescaled']:.3f} {interval(m['rescaled_ci'])} | "
                         f"{m['token_f1_rescaled']:.3f} {interval(m['token_f1_rescaled_ci'])} | "
                         f"{1 - m['grounding']:.2f} | {rec_text} |")
        for name, m in published.get(task, {}).get("models", {}).items():
            lines.append(f"| {task} | paper: {name} | {m['rescaled']:.3f} {interval(m['rescaled_ci'])} | "
                         f"{m['token_f1_rescaled']:.3f} {interval(m['token_f1_rescaled_ci'])} | "
                         f"{1 - m['grounding']:.2f} | |")
    from sling.config import compose
    from sling.scoring.stats import detectable_difference, questions_for

    ev = compose([]).eval
    how = ("paired bootstrap 95% interval over questions; each recipe is one training run, with one seed"
           if seed_counts <= {1} else
           "paired 95% interval that resamples each variant's training seeds, then questions (the seed count is "
           "given with each claim)")
    lines += ["", "**Headline** (computed from `results/study/scores.json`: each tuned variant minus the base, per "
              f"question, {how}; below eval.min_questions ({ev.min_questions}) questions no verdict is given):", ""]
    for task, s in scores.items():
        n = s["questions"]
        for v in [v for v in main + sweep if v in s["variants"] and v != "base"]:
            pair = s["paired"].get(f"{v}-base")
            if not pair:
                continue
            unsound = [k for k, x in s.get("soundness", {}).items() if not x["sound"]]
            seeds = len(pair["rescaled"].get("per_seed") or [None])

            def fate(d: dict, metric: str) -> str:
                if n < ev.min_questions:
                    if metric != "rescaled":  # eval.target_difference is a difference in rescaled cosine
                        return f"too few questions to tell: {n}"
                    more = questions_for(ev.target_difference, detectable_difference(d["ci"], ev.ci), n)
                    return f"too few questions to tell: {n}; about {more} would detect {ev.target_difference}"
                untested = ": not yet tested against seed variance" if sign(d) and seeds == 1 else ""
                return f"{VERDICT[sign(d)]}; {n} questions, {seeds} seed{'s' if seeds > 1 else ''}{untested}"

            parts = [f"{label} {signed(pair[k])} ({fate(pair[k], k)})"
                     for k, label in (("rescaled", "rescaled cosine"), ("token_f1_rescaled", "rescaled token F1"))]
            flag = f"; metrics flagged unsound on this task: {', '.join(unsound)}" if unsound else ""
            lines.append(f"- {task}, {v}: {'; '.join(parts)}; unsupported sentences "
                         f"{1 - s['variants'][v]['grounding']:.2f} against the base's "
                         f"{1 - s['variants']['base']['grounding']:.2f}{flag}.")
        best = {k: max(s["variants"], key=lambda n: s["variants"][n][k]) for k in ("rescaled", "token_f1_rescaled")}
        lines.append(f"- {task}: best of our variants on rescaled cosine `{best['rescaled']}`, on rescaled token F1 "
                     f"`{best['token_f1_rescaled']}`.")
    lines += seed_fates(scores, main + sweep, ev.min_questions)
    if seed_counts <= {1}:
        lines += ["", "Seed variance: every claim above rests on one training run per recipe, and the intervals "
                  "resample questions only. The pipeline now trains extra seeds (`train.extra_seeds`, pooled by a "
                  "bootstrap over seeds, then questions); the study has not yet been re-run with them "
                  "(`python scripts/study.py --runs <run> --seeds 1 2`), so no claim here is known to survive training "
                  "noise, and the ones marked \"beats the base\" are the ones to re-test first."]
    else:
        lines += ["", "Seed variance: a claim on several seeds holds across training noise as well as question "
                  "sampling (its interval resamples seeds, then questions); one marked \"not yet tested against seed "
                  "variance\" rests on one training run (`python scripts/study.py --runs <run> --seeds 1 2` adds "
                  "seeds to it)."]
    missing = [n for n in study.get("sweep_planned", []) if n not in study.get("sweep", [])]
    if missing:
        lines += ["", f"{'The sweep over the RAFT knobs is' if not sweep else 'Of the sweep, ' + ', '.join(missing)}"
                  f" {'not in these results' if not sweep else ('is' if len(missing) == 1 else 'are') + ' not run'};"
                  f" `python scripts/study.py --runs {' '.join(missing)}` adds {'it' if len(missing) == 1 else 'them'}."]
    if sweep:
        lines += ["", "The sweep over the RAFT knobs (`domain_raft` moved one knob at a time; "
                  "`results/study/runs/<run>/run.json` has each run's overrides):", "",
                  "| task | variant | overrides beyond the RAFT recipe | rescaled cosine | token F1 rescaled | "
                  "minus base, token F1 rescaled | unsupported sentences |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for task, s in scores.items():
            for v in ["domain_raft"] + sweep:
                if v not in s["variants"]:
                    continue
                run_name = study["variants"][v]["run"]
                extra = [o for o in study["runs"][run_name]["overrides"]
                         if o not in study["runs"]["raft"]["overrides"]] if "raft" in study["runs"] else []
                m, pair = s["variants"][v], s["paired"].get(f"{v}-base", {})
                lines.append(f"| {task} | {v} | {', '.join(f'`{o}`' for o in extra) or '(the recipe)'} | "
                             f"{m['rescaled']:.3f} {interval(m['rescaled_ci'])} | {m['token_f1_rescaled']:.3f} "
                             f"{interval(m['token_f1_rescaled_ci'])} | "
                             f"{signed(pair['token_f1_rescaled']) if pair else ''} | {1 - m['grounding']:.2f} |")
    return "\n".join(lines)


STUDY_VARIANTS = ("general", "domain", "domain_raft")  # the study's recipes; its sweep points are on its page
ZERO = {1: "lies above zero", -1: "lies below zero", 0: "is not distinguishable from zero"}


def study_frame() -> tuple[dict, dict, int]:
    """results/study/'s scores and run record, and eval.min_questions (below it no verdict is given)."""
    from sling.config import compose

    return (json.loads((STUDY / "scores.json").read_text()), json.loads((STUDY / "study.json").read_text()),
            compose([]).eval.min_questions)


def headline_section() -> str:
    """The README's headline: the paper's recipe (`domain`) against the base on each task of the study."""
    scores, study, min_q = study_frame()
    parts = []
    for task, s in scores.items():
        n = s["questions"]
        if n < min_q:
            parts.append(f"on the {task} task's {n} questions there is no verdict (fewer than eval.min_questions, "
                         f"{min_q})")
            continue
        d, f1 = s["paired"]["domain-base"]["rescaled"], s["paired"]["domain-base"]["token_f1_rescaled"]
        seeds = len(d.get("per_seed") or [None])
        g = {v: 1 - s["variants"][v]["grounding"] for v in ("domain", "base")}
        parts.append(f"on the {task} task's {n} questions the student tuned on the paper's synthetic Q&A (`domain`) "
                     f"{VERDICT[sign(d)]} by {signed(d)} rescaled cosine (paired 95% interval over {seeds} training "
                     f"seed{'s' if seeds > 1 else ''}, then questions), its rescaled token F1 gain, {signed(f1)}, "
                     f"{ZERO[sign(f1)]}"
                     f", and the share of its answer "
                     f"sentences the retrieved passages do not support is {g['domain']:.2f} against the base's "
                     f"{g['base']:.2f}")
    return (f"**Headline** (the study, `{study['command']}`: SmolLM2-135M tuned and asked on the paper's own data, "
            f"scored against its gpt-3.5-turbo answers): " + "; ".join(parts) + ".")


def summary_section() -> str:
    """The README's numbers: each of the study's recipes minus the base, per task, with its verdict."""
    scores, _, min_q = study_frame()
    lines = ["| task | questions | tuned variant | minus the base, rescaled cosine | verdict | training seeds | "
             "unsupported sentences (variant, base) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for task, s in scores.items():
        n = s["questions"]
        for v in STUDY_VARIANTS:
            d = s["paired"][f"{v}-base"]["rescaled"]
            verdict = VERDICT[sign(d)] if n >= min_q else f"too few questions to tell (below {min_q})"
            lines.append(f"| {task} | {n} | {v} | {signed(d)} | {verdict} | {len(d.get('per_seed') or [None])} | "
                         f"{1 - s['variants'][v]['grounding']:.2f}, {1 - s['variants']['base']['grounding']:.2f} |")
    return "\n".join(lines)


def draw_figure(path: Path = FIGURE) -> None:
    """The study report's forest plot (sling.scoring.report.forest_plot draws it with plotly in the HTML) as an SVG
    for the README and the docs: each tuned variant minus the base in rescaled cosine, one panel per task, the
    pooled 95% interval and each training seed's own mean. Byte-stable: a fixed hash salt and no date."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, _, min_q = study_frame()
    plt.rcParams.update({"svg.hashsalt": "sling", "svg.fonttype": "none", "font.size": 10})
    fig, axes = plt.subplots(1, len(scores), figsize=(4.2 * len(scores), 3.2), sharey=True, layout="constrained")
    names = [v for v in next(iter(scores.values()))["variants"] if v != "base"]
    variants = [v for v in STUDY_VARIANTS if v in names] + [v for v in names if v not in STUDY_VARIANTS]
    for ax, (task, s) in zip(list(axes) if len(scores) > 1 else [axes], scores.items()):
        for y, v in enumerate(variants):
            d = s["paired"][f"{v}-base"]["rescaled"]
            lo, hi = d["ci"]
            colour = {1: "#1b7837", -1: "#b2182b"}.get(sign(d) if s["questions"] >= min_q else 0, "#555555")
            ax.errorbar(d["mean"], y, xerr=[[d["mean"] - lo], [hi - d["mean"]]], fmt="o", color=colour, capsize=3)
            ax.scatter(d.get("per_seed") or [], [y] * len(d.get("per_seed") or []), facecolors="none",
                       edgecolors=colour, s=28, zorder=3)
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{task} ({s['questions']} questions" + (", no verdict)" if s["questions"] < min_q else ")"))
        ax.set_xlabel("minus the base, rescaled cosine")
        ax.set_yticks(range(len(variants)), variants)
    ax.invert_yaxis()  # the recipes first, from the top, then the sweep's points (the panels share this axis)
    fig.suptitle("The study: each tuned variant minus the base (95% interval; hollow: each training seed)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)


FATE = {(1, 1): "survives", (-1, -1): "survives", (1, 0): "**does not survive**", (-1, 0): "**does not survive**",
        (0, 0): "no claim either way", (0, 1): "appears only pooled", (0, -1): "appears only pooled",
        (1, -1): "**reversed**", (-1, 1): "**reversed**"}


def seed_fates(scores: dict, order: list[str], min_questions: int) -> list[str]:
    """Per comparison with several training seeds: what each seed alone would have claimed (its interval resampling
    questions only, as a one-seed study does), what the seeds pooled claim, and so the first seed's claim's fate."""
    rows, few, claims, partial, first = [], [], [], 0, None
    for task, s in scores.items():
        # each tuned variant against the base, then each recipe against the one before it (RAFT against the paper's
        # recipe, each sweep point against RAFT): the study's own claims
        names = [v for v in order if v in s["variants"]]
        pairs = [(v, "base") for v in names if v != "base"]
        pairs += [(b, a) for a, b in (("domain", "domain_raft"),) if a in names and b in names]
        pairs += [(v, "domain_raft") for v in names if v.startswith("domain_raft_")]
        seeded_pairs = [(b, a) for b, a in pairs if s["paired"].get(f"{b}-{a}", {}).get("rescaled", {}).get("per_seed_ci")]
        if seeded_pairs and s["questions"] < min_questions:
            few.append(f"{task} ({s['questions']} questions)")
            continue
        for b, a in seeded_pairs:
            for k, label in (("rescaled", "rescaled cosine"), ("token_f1_rescaled", "rescaled token F1")):
                d = s["paired"][f"{b}-{a}"][k]
                # the seeds in the order of per_seed (scores.json's per-variant per_seed is keyed, and sorted)
                seeds = d.get("seeds") or [f"#{i + 1}" for i in range(len(d["per_seed"]))]
                first = first if first is not None else seeds[0]
                alone = [{"mean": m, "ci": ci} for m, ci in zip(d["per_seed"], d["per_seed_ci"])]
                fate = FATE[(sign(alone[0]), sign(d))]
                each = "; ".join(f"{n}: {signed(x)}" for n, x in zip(seeds, alone))
                counts = {v: len(s["variants"][v].get("per_seed") or [None]) for v in (b, a) if v != "base"}
                over = (f"{len(alone)} seeds" if len(set(counts.values())) == 1 else
                        ", ".join(f"{c} seed{'s' if c > 1 else ''} of {v}" for v, c in counts.items()))
                single = [v for v, c in counts.items() if c == 1]
                if single:  # the seeds resampled are the other side's only: half a test of training noise
                    partial += 1
                    varied = [v for v, c in counts.items() if c > 1]
                    fate = f"{fate} (varying {', '.join(varied)}'s seeds only; {', '.join(single)}: 1 seed, untested)"
                else:
                    claims.append(fate)
                rows.append(f"| {task} | {b} minus {a} | {label} | {each} | {signed(d)} ({over}) | {fate} |")
    if not rows and not few:
        return []
    lines = ["", "**Which claims survive training noise** (computed from `results/study/scores.json`): each seed alone, "
             "its interval resampling questions only, is what a one-seed study would claim (the first seed, "
             f"{first if first is not None else '-'}, is the one the single-seed study reported); pooled, the interval resamples seeds, then questions. A claim "
             "needs its interval to exclude 0; the fate compares the first seed's claim with the pooled one.", ""]
    if rows:
        lines += ["| task | comparison | metric | each seed alone | pooled | fate |",
                  "| --- | --- | --- | --- | --- | --- |"] + rows
        made = [f for f in claims if f in ("survives", "**does not survive**", "**reversed**")]
        lines += ["", f"Claims the first seed alone made: {len(made)}; of them surviving the seeds pooled: "
                  f"{made.count('survives')}. Claims that appear only pooled: {claims.count('appears only pooled')}."]
        if partial:
            lines[-1] += (f" Not counted: {partial} row{'s' if partial > 1 else ''} where one side has a "
                          "single training seed, so the pooled interval varies the other side's seeds only (the "
                          "\"each seed alone\" column pairs that one run with each of the other side's seeds).")
    if few:
        lines += ["", f"{', '.join(few)}: below eval.min_questions ({min_questions}), no verdict with or without seeds."]
    return lines


def inline(text: str) -> str:
    """A document's own text in a Markdown page: its tags (an XML example, `<mime-type ...>`) shown, not read as
    HTML by the page."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def funnel_table(funnel: list[dict], groups: dict) -> list[str]:
    """A benchmark funnel as a Markdown table: each filter, its group, the candidates before, dropped and after."""
    return ["| filter | group | before | dropped | after |", "| --- | --- | --- | --- | --- |",
            *(f"| {f['filter']} | {groups.get(f['filter'], 'other')} | {f['before']} | {f['before'] - f['after']} | "
              f"{f['after']} |" for f in funnel)]


def documents_section() -> str:
    """results/documents/run.json (scripts/documents_run.py): the run's benchmark card and verdicts."""
    from sling.scoring.report import FILTER_GROUP, candidates_line, power_line
    from sling.scoring.report import VERDICT as SAID

    r = json.loads((ROOT / DOCUMENTS_RUN).read_text())
    b = r["benchmark"]
    docs = ", ".join(f"{d['document']} ({d['bytes'] // 1000} kB, {d['language'] or 'language not detected'})"
                     for d in r["documents"])
    lines = [f"Command: `{r['command']}` on {len(r['documents'])} real documents that no one here wrote: {docs}. "
             f"{r['split']['train_documents']} trained, {r['split']['benchmark_documents']} held out. "
             + (f"The pipeline run took {r['wall_s'] / 60:.1f} min ({r['machine']})." if r["wall_s"] else
                f"The run was stopped in training, after its benchmark stage, on a machine shared with other jobs "
                f"({r['machine']}): the card below is complete, the verdicts and the run time are not recorded."),
             "",
             f"Benchmark card: the teacher ({b['teacher']}) wrote {b['generated']} candidate questions from "
             f"{b['sampled_paragraphs']} paragraphs in {b['rounds']} round(s); {b['kept']} were kept "
             f"(aiming at {b['questions_per_document']} per benchmark document); leakage "
             f"{r['leakage']['leaked']} of {r['leakage']['benchmark_questions']}; the critic was "
             f"{'on' if b['critic']['enabled'] else 'off (benchmark.critic.enabled=auto with the embedded teacher)'}."
             + (f" {candidates_line(b)}" if candidates_line(b) else ""),
             "", *funnel_table(b["funnel"], FILTER_GROUP)]
    if b.get("multihop"):
        lines += ["", "Multi-hop candidates (pairs of paragraphs), before and after each check:", "",
                  *funnel_table(b["multihop"]["funnel"], FILTER_GROUP)]
    t = r.get("training_set")
    if t:
        lines += ["", f"Training set: the teacher wrote {t['input_rows']} synthetic candidates from the training "
                      f"documents; {t['kept']} passed the filters and the selection: {t['train_rows']} training rows "
                      f"and {t['eval_rows']} eval rows."]
    lines += ["", "Sampled questions with their references:", ""]
    for task, sample in b["card_samples"].items():
        for q in sample:
            lines.append(f"- {task}: {inline(q['question'])} *Reference:* {inline(q['reference'])}")
    if not r["tasks"]:
        return "\n".join(lines)
    lines += ["", "The verdicts, as the report words them:", ""]
    for task, t in r["tasks"].items():
        said, allowed = power_line({"power": t["power"]})
        said = re.sub(r"</?b>", "**", said).lstrip("; ").rstrip(".")
        lines.append(f"- {task} ({t['questions']} question{'s' if t['questions'] != 1 else ''}, {', '.join(t['languages'] or []) or 'language not detected'})"
                     f": {said}.")
        for pair, d in t["paired"].items():
            x = d["rescaled"]
            verdict = SAID[sign(x)] if allowed else "differs from the base by (no verdict)"
            # four spaces: the nesting both GitHub and the docs site's Markdown (Python-Markdown) read
            lines.append(f"    - {pair.split('-')[0]} {verdict} on rescaled cosine: {signed(x)}")
    return "\n".join(lines)


def export_section() -> str:
    """metrics/export/<variant>.json (pipeline/export.py): each form's KL, top-1 agreement, paired benchmark
    difference and whether it passes the gate."""
    from omegaconf import OmegaConf

    from sling.models.export import Difference, Figures, failures
    from sling.schema import GGUF_TYPES

    files = sorted((ROOT / export_metrics_path("x")).parent.glob("*.json"))
    if not files:
        return "No export measured yet: `python -m pipeline.export domain` writes metrics/export/domain.json."
    lines = []
    for path in files:
        r = json.loads(path.read_text())
        gate = OmegaConf.create({k: r[k] for k in ("max_kl", "min_top1", "tolerance")})
        order = ["merged", *GGUF_TYPES]  # the forms as the stage writes them, not the JSON's sorted keys
        forms = {form: Figures(**{**f, "benchmark": tuple(Difference(**{**d, "ci": tuple(d["ci"])})
                                                         for d in f["benchmark"])})
                 for form, f in sorted(r["forms"].items(), key=lambda kv: order.index(kv[0]))
                 for f in [{k: v for k, v in f.items() if k != "file"}]}
        first = next(iter(forms.values()))
        task_names = [d.task for d in first.benchmark]
        lines += [f"Variant `{r['variant']}` ({path.relative_to(ROOT).as_posix()}), every form read back through "
                  f"{r['loader']}; KL and top-1 over {first.positions} answer positions of {first.probes} probe "
                  f"prompts; the paired difference of rescaled cosine, form minus adapter, over the held-out "
                  f"questions each form answered (bootstrap 95% interval). The gate: mean KL at most "
                  f"{r['max_kl']}, top-1 at least {r['min_top1']:.0%}, no interval wholly below -{r['tolerance']}.",
                  "", "| form | file | mean KL (nats) | top-1 agreement | "
                  + " | ".join(f"{t}: form minus adapter (questions)" for t in task_names) + " | gate |",
                  "| --- | --- | --- | --- | " + " | ".join("---" for _ in task_names) + " | --- |"]
        for form, f in forms.items():
            failed = failures(form, f, gate)
            verdict = "passes" if not failed else "**fails**: " + "; ".join(x.split(": ", 1)[1].split(" over ")[0]
                                                                         for x in failed)
            diffs = " | ".join(f"{signed({'mean': d.mean, 'ci': d.ci})} ({d.questions})" for d in f.benchmark)
            lines.append(f"| {form} | `{r['forms'][form]['file']}` | {f.kl:.2g} | {f.top1:.1%} | {diffs} | {verdict} |")
        lines.append("")
    return "\n".join(lines).strip()


# Each generated section: its name and the command that prints it. The flag that writes it (beside `metrics`,
# always) is `--NAME`'s group in FLAGS; `python scripts/update_readme.py --NAME-table` prints it.
EXPERIMENTS = ["dvc", "exp", "show", "--md", "--only-changed", "--precision", "3", "--drop", ".*", "--keep",
               r"^(Experiment|lora\.r|train\.lr|adapters\.(general|domain)\.(train|eval)_loss|(single|joint)\.domain\."
               r"(rescaled|token_f1_rescaled)|(single|joint)\.domain-base\.(mean|low|high))$"]
SECTIONS = {
    "metrics": ["python", "scripts/update_readme.py", "--table"],
    "experiments": EXPERIMENTS,
    "study": ["python", "scripts/update_readme.py", "--study-table"],
    "headline": ["python", "scripts/update_readme.py", "--headline-table"],
    "summary": ["python", "scripts/update_readme.py", "--summary-table"],
    "documents": ["python", "scripts/update_readme.py", "--documents-table"],
    "scale": ["python", "scripts/scale_estimate.py"],
    "export": ["python", "scripts/update_readme.py", "--export-table"],
    "config": ["python", "scripts/config_reference.py"],
}
FLAGS = {"exps": ["experiments"], "study": ["study", "headline", "summary"], "documents": ["documents"],
         "scale": ["scale"], "export": ["export"], "config": ["config"]}
PRINTERS = {"table": (scores_table, "the results table"), "study_table": (study_section, "the study section"),
            "headline_table": (headline_section, "the README's headline"),
            "summary_table": (summary_section, "the README's study summary"),
            "documents_table": (documents_section, "the real-documents section"),
            "export_table": (export_section, "the export figures")}


def command_line(cmd: list[str]) -> str:
    """A section's command as its `_Produced by ..._` line shows it (quoted where a shell would need it)."""
    return " ".join(f"'{c}'" if set(c) & set(" ()*|$^") else c for c in cmd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exps", action="store_true", help="also regenerate the experiments table")
    parser.add_argument("--study", action="store_true",
                        help="also regenerate the study section, the README's headline and summary, and the forest "
                             "plot")
    parser.add_argument("--documents", action="store_true",
                        help="also regenerate the real-documents section (results/documents/)")
    parser.add_argument("--scale", action="store_true", help="also regenerate the scaling estimate (scale_estimate.py)")
    parser.add_argument("--export", action="store_true", help="also regenerate the export figures (metrics/export/)")
    parser.add_argument("--config", action="store_true", help="also regenerate the configuration reference")
    parser.add_argument("--figure", metavar="SVG", nargs="?", const=str(FIGURE),
                        help=f"draw the study's forest plot only (default {FIGURE.relative_to(ROOT)})")
    parser.add_argument("--scale-table", action="store_true", help="print the scaling estimate only")
    for flag, (_, what) in PRINTERS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=f"print {what} only")
    args = parser.parse_args()
    for flag, (printer, _) in PRINTERS.items():
        if getattr(args, flag):
            print(printer())
            return
    if args.scale_table:
        print(run(SECTIONS["scale"]))
        return
    if args.figure:
        draw_figure(Path(args.figure))
        return
    names = ["metrics"] + [n for flag, group in FLAGS.items() if getattr(args, flag) for n in group]
    for name in names:
        page = page_of(name)
        page.write_text(replace(page.read_text(), name, run(SECTIONS[name]), command_line(SECTIONS[name])))
    if args.study:
        draw_figure()
    print("updated:", ", ".join(f"{n} ({page_of(n).relative_to(ROOT).as_posix()})" for n in names)
          + (f", the figure {FIGURE.relative_to(ROOT).as_posix()}" if args.study else ""))


if __name__ == "__main__":
    main()
