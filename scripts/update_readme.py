"""Regenerate the README's result sections from the repository's own commands, never by hand.

    python scripts/update_readme.py            # the results table of the workspace run (metrics/*.json)
    python scripts/update_readme.py --exps     # also the experiments table (dvc exp show --md), into a
                                               # <!-- generated:experiments --> section you add where it belongs

Each section sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers and records the
command that produced it.
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


def run(cmd: list[str]) -> str:
    cmd = [sys.executable, *cmd[1:]] if cmd[0] == "python" else cmd
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def replace(text: str, name: str, body: str, cmd: str) -> str:
    block = f"<!-- generated:{name} -->\n_Produced by `{cmd}`._\n\n{body}\n<!-- /generated:{name} -->"
    pattern = re.compile(rf"<!-- generated:{name} -->.*?<!-- /generated:{name} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- generated:{name} --> section")
    return pattern.sub(lambda _: block, text)


def scores_table() -> str:
    """metrics/report.json and the training metrics as one compact markdown table per task."""
    report = json.loads((ROOT / "metrics/report.json").read_text())
    train = {s: json.loads((ROOT / f"metrics/train_{s}.json").read_text()) for s in ("general", "domain")}
    lines = ["| task | variant | cosine | rescaled | token F1 | token F1 rescaled |",
             "| --- | --- | --- | --- | --- | --- |"]
    for task, variants in report.items():
        for variant, m in variants.items():
            lines.append(f"| {task} | {variant} | {m['cosine']:.3f} | {m['rescaled']:.3f} | {m['token_f1']:.3f} | "
                         f"{m['token_f1_rescaled']:.3f} |")
    # Timings (tokens/s, wall time) stay in metrics/ only: they change with every run, the scores do not.
    lines += ["", "| adapter | first loss | last loss | eval loss | steps |", "| --- | --- | --- | --- | --- |"]
    for stage, m in train.items():
        lines.append(f"| {stage} | {m['train_loss_first']:.3f} | {m['train_loss']:.3f} | {m['eval_loss']:.3f} | {m['steps']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exps", action="store_true", help="also regenerate the experiments table")
    parser.add_argument("--table", action="store_true", help="print the results table only")
    args = parser.parse_args()
    if args.table:
        print(scores_table())
        return
    text = README.read_text()
    sections = [("metrics", ["python", "scripts/update_readme.py", "--table"])]
    if args.exps:
        sections.append(("experiments", ["dvc", "exp", "show", "--md", "--only-changed", "--precision", "3", "--drop", ".*",
                                         "--keep", r"^(Experiment|lora\.r|train\.lr|metrics/train_(general|domain)\.json:"
                                                   r"(train|eval)_loss|(single|joint)\.domain\.(rescaled|token_f1))$"]))
    for name, cmd in sections:
        text = replace(text, name, run(cmd), " ".join(f"'{c}'" if set(c) & set(" ()*|$^") else c for c in cmd))
    README.write_text(text)
    print("README.md updated:", ", ".join(n for n, _ in sections))


if __name__ == "__main__":
    main()
