"""The study: the paper's question answered on its own data, with the paper's recipe and a RAFT-style one, side by side.

    python scripts/study.py                       # both recipes, the RAFT sweep, then results/study/
    python scripts/study.py --no-sweep            # both recipes only
    python scripts/study.py --combine-only        # rebuild results/study/ from the runs already collected
    python scripts/study.py --runs raft_all_gold  # run (or re-run) only the named runs, then combine all collected
    python scripts/study.py --set train.general_epochs=0.01 --set train.domain_epochs=0.05   # a cut-down check
    python scripts/study.py --runs paper raft --seeds 1 2   # the same runs with two more training seeds each

Run it in a checkout that has the paper's files beside it (`../shared/seed`, as `data=paper` expects), after
`bash scripts/install.sh`. Every run is a DVC experiment in this workspace (`dvc exp run -S experiment=study ...`),
so `dvc exp show` lists each one's metrics and MLflow holds one parent run per experiment:
1. `paper`: the paper's recipe (domain prompts with the gold paragraph alone as context);
2. `raft`: the RAFT recipe (`dataset.raft.enabled=true`: the gold paragraph among retrieved distractors, a share of
   rows without it, answered "the context does not contain the answer"); DVC keeps the general adapter of run 1,
   whose inputs did not change, and retrains only the domain side;
3. the sweep over the RAFT knobs (`SWEEP`, each a run like 2 with one knob moved).
After each run its answers, metrics and loss curves are copied to `results/study/runs/<run>/`. Then the variants are
put side by side (base and +general from run 1; +general+domain from each run under its recipe's name), scored by
the score stage and reported by the report stage, in a scratch work root (SLING_WORKDIR), into results/study/:
scores.json, per_question.json, report.html, answers/, and study.json (each run's overrides, wall time, DVC
experiment name and the commit). `python scripts/update_readme.py --study` writes the study section (docs/study.md and
the README's headline) from it.

Training seeds: `--seeds 1 2` adds `train.extra_seeds=[1,2]` to the named runs, so each trains its adapters once more
per seed (DVC stages cached per seed: a later `--seeds 1 2 3` trains only seed 3) and answers with each. A run's
seeds are recorded in its run.json; the combined scores pool each tuned variant's seeds (`eval.variant_seeds`), so
its intervals resample seeds, then questions, and the study page (docs/study.md) says how many seeds stand behind each
claim. Runs collected with different seeds combine with each one's own.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from sling.paths import (
    CHUNKS_DIR,
    HEADLINE,
    LEAKAGE_METRICS,
    LOSS_DIR,
    METRICS_DIR,
    PAPER_RESCORED,
    PER_QUESTION,
    QUESTIONS_DIR,
    REFERENCE_DIR,
    REPORT,
    SCORES,
    STUDENTS_DIR,
    STUDY_DIR,
    TASKS,
    answers_path,
    seeded,
)

OUT = ROOT / STUDY_DIR
BASE = ["experiment=study"]
RECIPES = {"paper": [], "raft": ["dataset.raft.enabled=true"]}
# One knob moved from the RAFT recipe per point: no rows without the gold paragraph, and the paper's whole-prompt loss.
SWEEP = {"raft_all_gold": ["dataset.raft.enabled=true", "dataset.raft.no_gold_share=0"],
         "raft_loss_all": ["dataset.raft.enabled=true", "train.domain_loss_on=all"]}
# What a variant of the combined study is: the run its answers come from and the variant's name in that run.
SHARED = {"base": ("paper", "base"), "general": ("paper", "general")}
COLLECT = [STUDENTS_DIR, REFERENCE_DIR, METRICS_DIR, LOSS_DIR]
# What the score and report stages read besides the answers (from the first run: the benchmark is the same in all).
CONTEXT = [TASKS, QUESTIONS_DIR, LEAKAGE_METRICS, PAPER_RESCORED, CHUNKS_DIR]


def venv_env() -> dict:
    """This interpreter's bin folder first on PATH, so `dvc` and the stages' `python` are the venv's, activated or not."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def sh(cmd: list[str], env: dict | None = None) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, env={**venv_env(), **(env or {})})


def head_commit() -> str:
    """The commit this checkout is at (recorded beside each run and the combined study)."""
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    elif src.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def seeds_setting(seeds: list[int]) -> list[str]:
    return [f"train.extra_seeds=[{','.join(str(s) for s in seeds)}]"] if seeds else []


def run_experiment(name: str, overrides: list[str], extra: list[str], seeds: list[int] | None = None) -> dict:
    """One `dvc exp run` in the workspace, then its outputs copied to results/study/runs/<name>/."""
    exp = f"study-{name}-{datetime.now(timezone.utc):%Y%m%d%H%M}"
    settings = BASE + overrides + extra + seeds_setting(seeds or [])
    started = time.perf_counter()
    sh(["dvc", "exp", "run", "-n", exp, *[a for s in settings for a in ("-S", s)]])
    wall = time.perf_counter() - started
    dest = OUT / "runs" / name
    shutil.rmtree(dest, ignore_errors=True)
    for rel in COLLECT:
        copy(ROOT / rel, dest / rel)
    # the benchmark is the same in every run: the first recipe's run writes the context, or any run where this
    # checkout has none (its verbatim copies of the paper's files stay out of git, so a fresh clone has none)
    if name == next(iter(RECIPES)) or not (OUT / "context" / CONTEXT[0]).exists():
        for rel in CONTEXT:
            copy(ROOT / rel, OUT / "context" / rel)
    info = {"experiment": exp, "overrides": settings, "wall_s": round(wall, 1), "commit": head_commit(),
            "extra_seeds": list(seeds or [])}
    (dest / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"{name}: {exp} in {wall / 60:.1f} min", flush=True)
    return info


def combine(names: list[str], extra: list[str]) -> None:
    """Score and report every variant side by side, with the score and report stages, in a scratch work root."""
    variants = {**SHARED, **{("domain" if n == "paper" else f"domain_{n}"): (n, "domain") for n in names}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        copy(OUT / "context", work)
        tasks = json.loads((work / TASKS).read_text())["tasks"]
        # the references are the same in every run (the paper's gpt-3.5 answers): the first run's that has them here
        have = [n for n in names if (OUT / "runs" / n / REFERENCE_DIR).is_dir()]
        if not have:
            raise SystemExit(f"no run in {OUT / 'runs'} holds {REFERENCE_DIR} (kept out of git): run one of "
                             f"{', '.join(names)} again with --runs, and the rest are combined with it")
        copy(OUT / "runs" / have[0] / REFERENCE_DIR, work / REFERENCE_DIR)
        # each variant's answers (and closed-book answers, where its run made them) under the variant's name, with
        # those of its run's extra training seeds as <variant>-seed<N>
        seeds = {v: (run_seeds(run) if source != "base" else []) for v, (run, source) in variants.items()}
        for variant, (run, source) in variants.items():
            for task in tasks:
                for closed in (False, True):
                    for s in [None, *seeds[variant]]:
                        copy(OUT / "runs" / run / answers_path(seeded(source, s), task, closed),
                             work / answers_path(seeded(variant, s), task, closed))
        # runs collected before the closed-book arm existed have no closed-book answers: score without that arm
        closed_book = all((work / answers_path(v, t, closed_book=True)).exists() for v in variants for t in tasks)
        listing = "[" + ",".join(variants) + "]"
        pooled = "{" + ",".join(f"{v}:[{','.join(map(str, s))}]" for v, s in seeds.items() if s) + "}"
        env = {"SLING_WORKDIR": str(work), "DVC_EXP_NAME": "study-combined"}
        settings = BASE + extra + [f"rag.variants={listing}", f"rag.closed_book={str(closed_book).lower()}"]
        settings += [f"eval.variant_seeds={pooled}"] if any(seeds.values()) else []
        sh([sys.executable, "-m", "pipeline.score", *settings], env)
        sh([sys.executable, "-m", "pipeline.report", *settings], env)
        for rel, dst in ((SCORES, "scores.json"), (PER_QUESTION, "per_question.json"), (REPORT, "report.html")):
            copy(work / rel, OUT / dst)
        shutil.rmtree(OUT / "answers", ignore_errors=True)
        copy(work / STUDENTS_DIR, OUT / "answers")
        for task in tasks:
            copy(work / answers_path("reference", task), OUT / "answers" / f"reference_{task}.jsonl")
    runs = {n: json.loads((OUT / "runs" / n / "run.json").read_text()) for n in names}
    commit = head_commit()
    sweep = [n for n in names if n in SWEEP]
    command = "python scripts/study.py" + ("" if sweep else " --no-sweep") + "".join(f" --set {s}" for s in extra)
    study = {"command": command, "commit": commit,
             "cpu_count": os.cpu_count(), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "runs": runs, "variants": {v: {"run": r, "as": s} for v, (r, s) in variants.items()},
             "recipes": [n for n in names if n in RECIPES], "sweep": sweep, "sweep_planned": list(SWEEP),
             "wall_s": round(sum(r["wall_s"] for r in runs.values()), 1)}
    (OUT / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    experiments_table([r["experiment"] for r in runs.values()])
    print(f"wrote {OUT}: {', '.join(variants)}")


def run_seeds(run: str) -> list[int]:
    """The extra training seeds a collected run trained and answered with (none for runs before --seeds)."""
    return json.loads((OUT / "runs" / run / "run.json").read_text()).get("extra_seeds", [])


def experiments_table(names: list[str]) -> None:
    """`dvc exp show` of the study's experiments (the settings they changed and their domain scores), as markdown in
    results/study/experiments.md: the same rows `dvc exp show` lists in this checkout."""
    keep = (r"^(Experiment|dataset\.raft\.(enabled|no_gold_share|distractors)|train\.domain_loss_on|"
            rf"adapters\.domain\.eval_loss|({re.escape(HEADLINE)}:)?(single|joint)\.domain\.(rescaled|token_f1_rescaled))$")
    cmd = ["dvc", "exp", "show", "--md", "--precision", "3", "--drop", ".*", "--keep", keep]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=venv_env())
    if proc.returncode:
        print(f"warning: `dvc exp show` failed, results/study/experiments.md not written: {proc.stderr[-500:]}")
        return
    rows = [line for line in proc.stdout.splitlines()
            if line.startswith("| Experiment") or line.startswith("|--") or any(n in line for n in names)]
    (OUT / "experiments.md").write_text(f"_Produced by `{' '.join(cmd[:-1])} '{keep}'` (the study's rows)._\n\n"
                                        + "\n".join(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-sweep", action="store_true", help="run the two recipes only")
    ap.add_argument("--combine-only", action="store_true", help="only rebuild results/study/ from collected runs")
    ap.add_argument("--runs", nargs="+", choices=[*RECIPES, *SWEEP], metavar="RUN",
                    help=f"run only these (of {', '.join([*RECIPES, *SWEEP])}), keeping the runs already collected")
    ap.add_argument("--seeds", nargs="+", type=int, default=[], metavar="N",
                    help="extra training seeds for every run made (train.extra_seeds): each trains and answers once more")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for every run (a cut-down check: --set train.general_epochs=0.01)")
    a = ap.parse_args()
    plan = {**RECIPES, **({} if a.no_sweep and not a.runs else SWEEP)}
    if not a.combine_only:
        for name, overrides in plan.items():
            if not a.runs or name in a.runs:
                run_experiment(name, overrides, a.set, a.seeds)
    names = [n for n in plan if (OUT / "runs" / n / "run.json").exists()]
    if not names or names[0] != next(iter(RECIPES)):
        raise SystemExit(f"no collected run of the paper recipe in {OUT / 'runs'}: run the study first")
    combine(names, a.set)


if __name__ == "__main__":
    main()
