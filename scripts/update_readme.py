"""Regenerate the README's result sections from the repository's own commands, never by hand.

    python scripts/update_readme.py            # metrics of the workspace run (dvc metrics show --md)
    python scripts/update_readme.py --exps     # also the experiments table (dvc exp show --md)

Each section sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers and records the
command that produced it.
"""
from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def replace(text: str, name: str, body: str, cmd: str) -> str:
    block = f"<!-- generated:{name} -->\n_Produced by `{cmd}`._\n\n{body}\n<!-- /generated:{name} -->"
    pattern = re.compile(rf"<!-- generated:{name} -->.*?<!-- /generated:{name} -->", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- generated:{name} --> section")
    return pattern.sub(lambda _: block, text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exps", action="store_true", help="also regenerate the experiments table")
    args = parser.parse_args()
    text = README.read_text()
    sections = [("metrics", ["dvc", "metrics", "show", "--md", "--precision", "3", "metrics/report.json", "metrics/train_general.json",
                             "metrics/train_domain.json", "metrics/index.json"])]
    if args.exps:
        sections.append(("experiments", ["dvc", "exp", "show", "--md", "--only-changed", "--precision", "3",
                                         "--drop", r"^(?!.*(lora\.r|train\.lr|Experiment|eval_loss|train_loss|rescaled|token_f1)).*$"]))
    for name, cmd in sections:
        text = replace(text, name, run(cmd), " ".join(c if " " not in c and "(" not in c else f"'{c}'" for c in cmd))
    README.write_text(text)
    print("README.md updated:", ", ".join(n for n, _ in sections))


if __name__ == "__main__":
    main()
