"""A person's audit of the benchmark: sampled questions, each shown with its source paragraph and reference, judged
valid or invalid (and why) in the terminal. The judgements are added to data/benchmark/audit.jsonl, beside the
benchmark: commit it (git), and the report stage, which depends on it, puts the audited validity rate with its Wilson
interval at eval.ci into the benchmark card, the verdict and metrics/report.json.

    python scripts/audit.py                        # judge up to 25 questions no one has judged yet, then the rate
    python scripts/audit.py --n 10 --seed 1        # fewer, another draw
    python scripts/audit.py --answers answers.csv  # non-interactive: columns id,valid,why (or JSON Lines)
    python scripts/audit.py --rate                 # the current audit's rate, nothing asked
    dvc repro report                               # then the report cites it

A valid question makes sense on its own, its source paragraph answers it, and its reference says what the paragraph
says. Each judgement records the question's id and a hash of the question and its reference: after the benchmark is
generated again, judgements of questions that changed are stale, counted and ignored. Hydra-style overrides
(`eval.ci=0.9`) are read as the pipeline's stages read them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.paths import AUDIT
from sling.scoring.audit import (
    benchmark_items,
    judgement,
    read_answers,
    read_judgements,
    save_judgements,
    show,
    summarise,
    unjudged_sample,
)


def ask(prompt: str, allowed: dict[str, str]) -> str:
    while True:
        answer = input(prompt).strip().lower()
        if answer in allowed:
            return allowed[answer]
        print(f"  answer one of {', '.join(sorted(allowed))}")


def judge_in_terminal(path: Path, items, judgements: list[dict], n: int, seed: int) -> list[dict]:
    """Ask about up to `n` unjudged questions, saving after each answer (quitting keeps what was said)."""
    sample = unjudged_sample(items, judgements, n, seed)
    if not sample:
        print("every question of the benchmark has been judged")
    for i, item in enumerate(sample, 1):
        print(f"\n--- {i} of {len(sample)} " + "-" * 60 + "\n" + show(item))
        said = ask("valid? [y]es / [n]o / [s]kip / [q]uit: ",
                   {"y": "valid", "yes": "valid", "n": "invalid", "no": "invalid", "s": "skip", "q": "quit"})
        if said == "quit":
            break
        if said == "skip":
            continue
        why = input("why? " if said == "invalid" else "why (optional)? ")
        judgements = save_judgements(path, judgements, [judgement(item, said == "valid", why)])
    return judgements


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=25, help="questions to ask about (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="the draw of questions (default 0)")
    parser.add_argument("--answers", type=Path, help="judgements from a file (CSV id,valid,why or JSON Lines)")
    parser.add_argument("--rate", action="store_true", help="print the current audit's rate, ask nothing")
    parser.add_argument("--audit", type=Path, default=None, help=f"the audit file (default {AUDIT})")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    cfg = load_config(overrides)
    path = args.audit or resolve_path(AUDIT)
    items = benchmark_items()
    judgements = read_judgements(path)
    if args.answers:
        judgements = save_judgements(path, judgements, read_answers(args.answers, items))
    elif not args.rate:
        judgements = judge_in_terminal(path, items, judgements, args.n, args.seed)
    audit = summarise(judgements, items, cfg.eval.ci)
    print(f"{path}: {audit.line()} ({len(items)} questions in the benchmark)")
    if audit.invalid_why:
        print("invalid, why: " + "; ".join(why or "(no reason given)" for why in audit.invalid_why))


if __name__ == "__main__":
    run(main)
