"""Did this workspace's run reproduce the committed one? Metric by metric, and stage by stage in dvc.lock.

    python scripts/check_repro.py              # headline metrics: metrics/*.json against the committed ones (HEAD)
    python scripts/check_repro.py --lock       # dvc.lock against the committed one: stale stages, outputs that differ
    python scripts/check_repro.py --rev main   # against another revision
    python scripts/check_repro.py --lock --code-changed --rev REV   # after a refactor: the same outputs as REV's run

Headline metrics, each compared with `git show REV:metrics/<file>`: per task and variant (metrics/scores.json)
cosine, rescaled, token_f1, token_f1_rescaled and grounding; the means of the paired differences of those; retrieval
recall@k and MRR; each adapter's train and eval loss (metrics/train_*.json, and metrics/seeds/<seed>/train_*.json
for train.extra_seeds). Each prints one verdict:

- identical: the same number;
- within the seed band: the committed results have the metric for several training seeds (`per_seed` in
  scores.json, one train_*.json per seed) and the workspace's value lies within their min..max, widened by nothing
  else;
- outside: neither (a metric missing from the workspace counts as outside).

Timings, throughputs and memory are not headline metrics and are not compared. The exit code is 1 only when a
headline metric is outside, 2 when a file is missing.

`--lock` reads both dvc.lock files. A stage whose command, params or source dependencies (code, corpus, models: any
dependency that no stage writes) differ from the committed lock is stale: the committed dvc.lock was not regenerated
after a change, and the fix is to re-run dvc repro and commit dvc.lock. A stage whose inputs all match but whose
outputs differ did not reproduce byte for byte (on the committed run's hardware and software, a determinism bug;
elsewhere expected: the provenance files name the machine). metrics/ files and the report are left to the metric
check: the training and answering metrics, and the report that shows them, hold timings, so their hashes differ on
every run. Exit 1 on either finding.

`--code-changed` is for a change meant to leave every output as it was (a refactor): a stage whose only difference
from REV's lock is in its code dependencies (`*.py`) is not stale but compared by its outputs, and printed as
`same outputs` or `not reproduced`.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from sling.paths import METRICS_DIR, REPORTS_DIR, SCORES  # the pipeline's paths, named once

ROOT = Path.cwd()  # set by main(): the git repository the command runs in
# Outputs that hold wall-clock timings, so their bytes differ on every run: the metrics (compared metric by metric
# instead) and the report, which shows the answer stage's latency and tokens/s beside the scores.
TIMED = (f"{METRICS_DIR}/", f"{REPORTS_DIR}/")
VARIANT_METRICS = ("cosine", "rescaled", "token_f1", "token_f1_rescaled", "grounding")
TRAIN_METRICS = ("train_loss", "eval_loss")
VERDICTS = ("identical", "within the seed band", "outside")


class Missing(Exception):
    """A file the check needs is not there: one line says which and what to do."""


def committed_text(rev: str, path: str) -> str:
    """`path` (relative to the repository root) as committed at `rev`."""
    done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise Missing(f"{path} is not committed at {rev}: commit the results of a full dvc repro first")
    return done.stdout


def workspace_text(path: str) -> str:
    file = ROOT / path
    if not file.exists():
        raise Missing(f"{path} is missing from the workspace: run dvc repro first")
    return file.read_text(encoding="utf-8")


def load_json(text: str, where: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Missing(f"{where} is not valid JSON ({e.msg}, line {e.lineno})") from e


def seed_values(node: dict, metric: str) -> list[float]:
    """A metric's per-seed values under `node["per_seed"]`: {"<seed>": {metric: value}} (a variant) or a list of
    values, one per seed (a paired difference's metric node), or {"<seed>": value}."""
    per_seed = node.get("per_seed") or {}
    values = []
    for entry in per_seed.values() if isinstance(per_seed, dict) else per_seed:
        value = entry.get(metric, entry.get("mean")) if isinstance(entry, dict) else entry
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values.append(float(value))
    return values


def tasks_of(scores: dict) -> dict:
    """The tasks in metrics/scores.json: under `tasks` where there is such a key, else the top-level entries that
    hold `variants`."""
    tasks = scores.get("tasks") if isinstance(scores.get("tasks"), dict) else scores
    return {name: task for name, task in tasks.items() if isinstance(task, dict) and "variants" in task}


def score_metrics(scores: dict) -> dict[str, tuple[float | None, list[float]]]:
    """Every headline metric of metrics/scores.json: name -> (value, its per-seed values)."""
    out = {}
    for task_name, task in tasks_of(scores).items():
        for variant, node in sorted(task.get("variants", {}).items()):
            for metric in VARIANT_METRICS:
                if metric in node:
                    out[f"{task_name} {variant} {metric}"] = (node[metric], seed_values(node, metric))
        for pair, node in sorted(task.get("paired", {}).items()):
            for metric in VARIANT_METRICS:
                if isinstance(node.get(metric), dict) and "mean" in node[metric]:
                    out[f"{task_name} {pair} {metric} (paired mean)"] = (
                        node[metric]["mean"], seed_values(node[metric], "mean") or seed_values(node, metric))
        for key, value in sorted(task.get("retrieval", {}).items()):
            if key.startswith("recall_at_") or key == "mrr":
                out[f"{task_name} retrieval {key}"] = (value, seed_values(task["retrieval"], key))
    return out


def train_name(path: str) -> tuple[str, str]:
    """metrics/train_general.json -> ("general", "general"); metrics/seeds/7/train_general.json (train.extra_seeds)
    -> ("general", "general seed 7"): the adapter, and the name its metrics print under."""
    adapter = Path(path).stem.removeprefix("train_")
    parts = Path(path).parts
    return adapter, f"{adapter} seed {parts[-2]}" if "seeds" in parts else adapter


def headline(read, files: list[str]) -> dict[str, tuple[float | None, list[float]]]:
    """The headline metrics of one side (the workspace's or the committed files, through `read`). An adapter's train
    and eval loss have a seed band when it was trained with several seeds (metrics/seeds/<seed>/train_*.json)."""
    out, losses = {}, {}
    for path in files:
        data = load_json(read(path), path)
        if Path(path).name == "scores.json":
            out |= score_metrics(data)
            continue
        adapter, name = train_name(path)
        for metric in TRAIN_METRICS:
            if metric in data:
                out[f"{name} {metric}"] = (data[metric], [])
                losses.setdefault((adapter, metric), []).append(float(data[metric]))
    for path in files:
        if Path(path).name != "scores.json":
            adapter, name = train_name(path)
            for metric in TRAIN_METRICS:
                band = losses.get((adapter, metric), [])
                if f"{name} {metric}" in out and len(band) > 1:
                    out[f"{name} {metric}"] = (out[f"{name} {metric}"][0], band)
    return out


def verdict(value, committed, band: list[float]) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if value == committed:
        return "identical"
    if number and band and min(band) <= value <= max(band):
        return "within the seed band"
    return "outside"


def check_metrics(rev: str) -> int:
    committed_files = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, f"{METRICS_DIR}/"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.split()
    files = [SCORES] + sorted(f for f in committed_files if Path(f).name.startswith("train_")
                                             and f.endswith(".json"))
    committed = headline(lambda p: committed_text(rev, p), files)
    ours = headline(workspace_text, files)
    counts = dict.fromkeys(VERDICTS, 0)
    width = max(map(len, VERDICTS))
    for name, (old, band) in committed.items():
        value = ours.get(name, (None, []))[0]
        said = verdict(value, old, band)
        counts[said] += 1
        detail = (f"{value}" if said == "identical" else "missing from the workspace" if name not in ours
                  else f"{value}") + ("" if said == "identical" else f" (committed {old}" + (
                      f", seeds {min(band)}..{max(band)})" if band else ")"))
        print(f"{said:<{width}}  {name}: {detail}")
    for name in sorted(set(ours) - set(committed)):
        print(f"{'new':<{width}}  {name}: {ours[name][0]} (not in the committed metrics)")
    print(f"check_repro: {len(committed)} headline metrics against {rev}:metrics/: "
          + ", ".join(f"{n} {v}" for v, n in counts.items()))
    return 1 if counts["outside"] else 0


def lock_stages(text: str, where: str) -> dict:
    import yaml

    try:
        return (yaml.safe_load(text) or {}).get("stages", {})
    except yaml.YAMLError as e:
        raise Missing(f"{where} is not valid YAML ({e})") from e


def entries(stage: dict, kind: str) -> dict[str, tuple]:
    return {e["path"]: (e.get("md5") or e.get("hash"), e.get("size")) for e in stage.get(kind, [])}


def check_lock(rev: str, code_changed: bool = False) -> int:
    ours = lock_stages(workspace_text("dvc.lock"), "dvc.lock")
    committed = lock_stages(committed_text(rev, "dvc.lock"), f"{rev}:dvc.lock")
    written = {path for stage in [*ours.values(), *committed.values()] for path in entries(stage, "outs")}

    def upstream(path: str) -> bool:
        return any(path == out or path.startswith(out.rstrip("/") + "/") for out in written)

    stale, differ, same = [], [], []
    for name in [*committed, *(n for n in ours if n not in committed)]:
        old, new = committed.get(name), ours.get(name)
        if old is None or new is None:
            stale.append(f"{name}: {'not in the committed dvc.lock' if old is None else 'not run in the workspace'}")
            continue
        why = ["cmd"] if old.get("cmd") != new.get("cmd") else []
        why += ["params " + ", ".join(sorted(k for file in {*old.get("params", {}), *new.get("params", {})}
                                             for k in {*old.get("params", {}).get(file, {}),
                                                       *new.get("params", {}).get(file, {})}
                                             if old.get("params", {}).get(file, {}).get(k)
                                             != new.get("params", {}).get(file, {}).get(k)))] \
            if old.get("params") != new.get("params") else []
        old_deps, new_deps = entries(old, "deps"), entries(new, "deps")
        why += [f"dep {p}" for p in sorted({*old_deps, *new_deps})
                if old_deps.get(p) != new_deps.get(p) and not upstream(p)]
        code_only = code_changed and why and all(w.startswith("dep ") and w.endswith(".py") for w in why)
        if why and not code_only:
            stale.append(f"{name}: {'; '.join(why)}")
            continue
        old_outs, new_outs = entries(old, "outs"), entries(new, "outs")
        outs = [p for p in sorted({*old_outs, *new_outs})
                if old_outs.get(p) != new_outs.get(p) and not p.startswith(TIMED)]
        if outs:
            differ.append(f"{name}: {', '.join(outs)}")
        elif code_only:
            same.append(f"{name}: {len(why)} code dependencies changed, {len(old_outs)} outputs as committed")
    for line in stale:
        print(f"stale                {line}")
    for line in differ:
        print(f"not reproduced       {line}")
    for line in same:
        print(f"same outputs         {line}")
    print(f"check_repro --lock: {len(ours)} stages against {rev}:dvc.lock: {len(stale)} stale, "
          f"{len(differ)} with inputs as committed but other outputs"
          + (f", {len(same)} with other code and the same outputs" if code_changed else ""))
    if stale:
        print("the committed dvc.lock is stale: re-run dvc repro and commit dvc.lock (with metrics/ and plots/)")
    if differ:
        print("outputs differ from the committed run with the same inputs: on the committed run's machine kind "
              "(its provenance files and sling environment) this is nondeterminism to fix; on another "
              "machine, python scripts/check_repro.py decides")
    return 1 if stale or differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the committed revision to compare with (default HEAD)")
    parser.add_argument("--lock", action="store_true", help="compare dvc.lock, not the metrics")
    parser.add_argument("--code-changed", action="store_true",
                        help="with --lock: code dependencies may differ (a refactor); compare those stages' outputs")
    args = parser.parse_args(argv)
    global ROOT
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if top.returncode != 0:
        print(f"check_repro: {Path.cwd()} is not in a git repository: run it in the project's clone", file=sys.stderr)
        return 2
    ROOT = Path(top.stdout.strip())
    try:
        if args.code_changed and not args.lock:
            parser.error("--code-changed goes with --lock")
        return check_lock(args.rev, args.code_changed) if args.lock else check_metrics(args.rev)
    except Missing as e:
        print(f"check_repro: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
