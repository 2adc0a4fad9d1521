"""The embedded teacher's candidate questions at several batch sizes: the same prompts (the benchmark's question
types over real paragraphs, each reply ending at its question mark or at teacher.question_max_tokens), prompts per
second at each `teacher.batch_size`, and the ratio to the first, measured side by side in one run (sides interleaved
over `--repeats`, so a loaded machine slows each alike).

    .venv/bin/python bench/bench_teacher_batch.py /path/to/ingested/paragraphs.jsonl
    .venv/bin/python bench/bench_teacher_batch.py paragraphs.jsonl --batch-sizes 8 16 32 --prompts 32 --dtype auto

The replies are identical at every batch size for greedy decoding up to float rounding (left padding differs), so
the count of replies that end with a question mark is printed too, as a check that a larger batch writes as well.
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paragraphs", help="an ingest stage's paragraphs.jsonl")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    from sling.config import compose
    from sling.data.questions import QUESTION_STOP, QUESTION_TYPES, clean_question
    from sling.documents.language import prompt_language
    from sling.teacher.client import make_teacher

    rows = [json.loads(line) for line in open(args.paragraphs, encoding="utf-8")]
    rows = [p for p in rows if len(p["text"]) >= 200]
    step = max(1, len(rows) // args.prompts)
    picked = rows[::step][:args.prompts]
    types = list(QUESTION_TYPES)
    prompts = [QUESTION_TYPES[types[i % len(types)]].format(paragraph=p["text"], language=prompt_language(p))
               for i, p in enumerate(picked)]
    cfg = compose([f"teacher.dtype={args.dtype}"])
    teacher = make_teacher(cfg.teacher, cfg.model)
    limit = cfg.teacher.question_max_tokens
    seconds = {b: 0.0 for b in args.batch_sizes}
    asked = {b: 0 for b in args.batch_sizes}
    for _ in range(args.repeats):
        for b in args.batch_sizes:
            teacher.cfg.batch_size = b
            t0 = time.perf_counter()
            done = []
            for lo in range(0, len(prompts), b):
                done += teacher.complete_batch(prompts[lo:lo + b], None, 0, QUESTION_STOP, limit)
            seconds[b] += time.perf_counter() - t0
            asked[b] = sum(clean_question(c.text).endswith(tuple(QUESTION_STOP)) for c in done)
    first = args.batch_sizes[0]
    print(f"{len(prompts)} prompts, teacher {teacher.name}, question_max_tokens {limit}, {args.repeats} repeat(s)")
    for b in args.batch_sizes:
        rate = len(prompts) * args.repeats / seconds[b]
        print(f"batch {b:3d}: {seconds[b]:7.1f} s, {rate:5.2f} prompts/s, x{seconds[first] / seconds[b]:.2f} of batch "
              f"{first}; {asked[b]}/{len(prompts)} replies are questions")


if __name__ == "__main__":
    main()
