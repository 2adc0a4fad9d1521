"""`sling ask` and `sling chat` on a tiny run: the installed `sling` command, run as a user runs it, answers as the answer
stage does.

A work root is made once: the benchmark and index stages on tests/test_index.py's three documents, with the packaged
SmolLM2 snapshot (tests/conftest.py's `base_dir`) as the base and its tokenizer counting chunk tokens; general and domain
LoRA adapters trained on that base for a few steps by the real `sling.models.training.train`; then the answer stage's
own entry point answers the benchmark questions with every variant. `sling ask` must give the stage's answers and
retrieved passages for the same questions, and `sling chat` serves them, with the base model's, on 127.0.0.1 to a
real HTTP client.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sling.io import write_jsonl
from tests.conftest import mlflow_db, venv_env
from tests.test_index import DOCS, overrides, write_docs

QUESTIONS = ["What does LoRA train?", "Where does an embedded Qdrant keep its collections?",
             "How often do bakers feed a sourdough starter?"]
SETTINGS = ["rag.max_new_tokens=24", "rag.dtype=float32"]
# adapters that changed something in a few steps: a high learning rate, short sequences
TRAIN = ["train.lr=0.005", "train.warmup_steps=0", "train.batch_size=2", "train.general_max_steps=3",
         "train.domain_max_steps=3", "train.eval_steps=3", "train.save_steps=3", "train.logging_steps=1",
         "train.max_length=64", "lora.dropout=0.0"]
GENERAL = [{"prompt": "Name a colour of the sky.", "response": "The sky is blue, always blue."},
           {"prompt": "What do cows eat?", "response": "Cows eat grass, mostly grass."}]
DOMAIN = [{"prompt": f"Question: {q}\nAnswer:", "response": "Adapters, in a local folder, daily."} for q in QUESTIONS]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory, base_dir) -> Path:
    """A finished tiny run: index, adapters, the answer stage's answers."""
    from pipeline.answer import main as answer
    from pipeline.benchmark import main as benchmark
    from pipeline.index import main as index
    from sling.config import compose
    from sling.models.training import train

    root = tmp_path_factory.mktemp("run")
    (root / "models").mkdir()
    (root / "models/base").symlink_to(base_dir, target_is_directory=True)
    write_docs(root / "docs", DOCS)
    (root / "questions.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "question": q, "reference": "An answer."}) + "\n" for i, q in enumerate(QUESTIONS)))
    for name, rows in (("general", GENERAL), ("domain", DOMAIN)):
        write_jsonl(root / f"data/datasets/{name}/train.jsonl", rows)
        write_jsonl(root / f"data/datasets/{name}/eval.jsonl", rows[:1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLING_WORKDIR", str(root))
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_db(root / "mlflow.db"))
        benchmark(overrides(root))
        index(overrides(root))
        cfg = compose(overrides(root, *TRAIN))
        for stage in ("general", "domain"):
            train(cfg, stage, base_dir=base_dir)
        answer(["students", *overrides(root, *SETTINGS)])
    return root


def sling(root: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The installed `sling` command on the tiny run, from outside the repository."""
    return subprocess.run(["sling", *args], cwd=root.parent, env=venv_env({"SLING_WORKDIR": str(root)}),
                          capture_output=True, text=True, timeout=timeout)


def settings(root: Path) -> list[str]:
    return [a for o in overrides(root, *SETTINGS) for a in ("-S", o)]


def stage_rows(root: Path, variant: str, task: str) -> list[dict]:
    return [json.loads(line) for line in (root / f"results/students/{variant}_{task}.jsonl").read_text().splitlines()]


@pytest.mark.integration
def test_sling_ask_gives_the_answer_stages_answer_and_passages(run_root):
    """One question asked alone: the stage answered it in a batch with the others and their closed-book prompts."""
    stage = {v: stage_rows(run_root, v, "single") for v in ("base", "domain")}
    assert [r["answer"] for r in stage["domain"]] != [r["answer"] for r in stage["base"]], \
        "the adapters changed nothing: the comparison below would not tell variants apart"
    row = stage["domain"][0]
    proc = sling(run_root, "ask", "--json", "--variant", "domain", "--task", "single", row["question"],
                 *settings(run_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["answer"] == row["answer"]
    assert [(p["document"], p["pages"], p["text"]) for p in got["passages"]] == \
           [(c["document"], c["pages"], c["text"]) for c in row["retrieved"]]
    assert got["answer_s"] > 0 and got["retrieval_s"] >= 0


@pytest.mark.integration
def test_sling_ask_file_answers_a_batch_as_the_stage_did_with_sources_and_time(run_root, tmp_path):
    questions = tmp_path / "questions.txt"
    questions.write_text("# asked together\n" + "\n".join(QUESTIONS) + "\n\n")
    proc = sling(run_root, "ask", "--variant", "base", "--task", "joint", "--file", str(questions), *settings(run_root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "variant: base (chosen with --variant)" in out and "index of task joint (3 documents)" in out
    for row in stage_rows(run_root, "base", "joint"):
        assert f"Q: {row['question']}\nA (base): {row['answer']}\nSources:\n  [1] " in out
    assert re.search(r"\[1\] (lora|qdrant|bakery)\.md, p\. 1 \(score 0\.\d{3}\)", out)
    assert len(re.findall(r"^Time: \d+\.\d\d s \(retrieval .*, its share of the 3 answered together", out, re.M)) == 3
    assert re.search(r"3 question\(s\) answered in \d+\.\d\d s", out)


@pytest.mark.integration
def test_sling_ask_defaults_to_the_reports_best_variant(run_root, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(run_root, work, symlinks=True, ignore=shutil.ignore_patterns("results", "mlflow.db"))
    report = {"joint": {"base": {"rescaled": 0.1}, "general": {"rescaled": 0.4}, "domain": {"rescaled": 0.3},
                        "general-base": {"mean": 0.3}, "questions": 3}}
    (work / "metrics").mkdir(exist_ok=True)
    (work / "metrics/report.json").write_text(json.dumps(report))
    proc = sling(work, "ask", "What does LoRA train?", *settings(work))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "variant: general (the report's best on task joint: rescaled cosine 0.400" in proc.stdout
    assert "adapters of general: models/adapters/general (provenance sha256 " in proc.stdout
    assert "A (general): " in proc.stdout


@pytest.mark.integration
def test_sling_chat_serves_both_answers_to_a_real_client(run_root):
    proc = subprocess.Popen(["sling", "chat", "--port", "0", "--variant", "domain", "--task", "single",
                             *settings(run_root)], cwd=run_root.parent,
                            env=venv_env({"SLING_WORKDIR": str(run_root)}), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "ready in" in line:
                break
        url = re.search(r"open (http://127\.0\.0\.1:\d+/)", "".join(lines))
        assert url, "".join(lines)[-3000:]
        url = url.group(1)
        home = urllib.request.urlopen(url, timeout=60).read().decode()
        assert "sling chat: domain beside base" in home and "models/adapters/domain" in home and "<form" in home
        row = {v: stage_rows(run_root, v, "single")[0] for v in ("base", "domain")}
        request = urllib.request.Request(url + "api/ask", data=json.dumps({"question": row["domain"]["question"]}).encode(),
                                         headers={"Content-Type": "application/json"})
        got = json.loads(urllib.request.urlopen(request, timeout=300).read())
        assert got["replies"]["domain"]["answer"] == row["domain"]["answer"]
        assert got["replies"]["base"]["answer"] == row["base"]["answer"]
        assert [p["text"] for p in got["passages"]] == [c["text"] for c in row["domain"]["retrieved"]]
        page = urllib.request.urlopen(url + "?" + urllib.parse.urlencode({"q": row["domain"]["question"]}),
                                      timeout=300).read().decode()
        assert html.escape(row["domain"]["answer"]) in page and html.escape(row["base"]["answer"]) in page
        assert page.count("<li><span class='src'>lora.md, p. 1</span>") == 2 * len(got["passages"])  # in each column
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(urllib.request.Request(url + "api/ask", data=b"not json"), timeout=60)
        assert bad.value.code == 400
        served = json.loads(urllib.request.urlopen(url + "api/serving", timeout=60).read())
        assert served["tuned"] == "domain" and served["task"] == "single"
        assert [a["path"] for a in served["adapters"]["domain"]] == ["models/adapters/general", "models/adapters/domain"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.integration
def test_an_index_held_open_elsewhere_is_one_line_naming_it(run_root):
    from qdrant_client import QdrantClient

    holder = QdrantClient(path=str(run_root / "index/qdrant"))  # as a running `sling chat` holds it
    try:
        proc = sling(run_root, "ask", "--variant", "domain", "What does LoRA train?", *settings(run_root))
    finally:
        holder.close()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line, = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: the index at {run_root / 'index/qdrant'} is open in another process")


def test_before_any_run_sling_ask_says_which_command_makes_the_index(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = sling(tmp_path / "empty", "ask", "What does LoRA train?")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "is missing" in line and "`dvc repro" in line


@pytest.mark.parametrize("args, says", [
    (["ask", "--variant", "large", "q"], "invalid choice: 'large'"),
    (["ask", "--file", "nowhere.txt"], "nowhere.txt is missing: --file takes a text file with one question per line"),
    (["ask"], "no question"),
    (["serve"], "invalid choice: 'serve'"),
])
def test_every_usage_mistake_is_one_line(tmp_path, args, says):
    proc = sling(tmp_path, *args, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line


def test_help_lists_the_sub_commands(tmp_path):
    proc = sling(tmp_path, "--help", timeout=60)
    assert proc.returncode == 0 and "{ask,chat,pretrained,precision,environment}" in proc.stdout


def test_the_machine_facts_are_sub_commands(tmp_path):
    """`sling precision` and `sling environment` print JSON (they were library modules' mains)."""
    for command, key in (("precision", "train.precision=auto"), ("environment", "cpu")):
        proc = sling(tmp_path, command, timeout=120)
        assert proc.returncode == 0 and key in json.loads(proc.stdout), proc.stderr
