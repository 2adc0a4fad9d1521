"""A person's audit of the benchmark: scripts/audit.py run for real, non-interactively (answers from a file) and in
the terminal, on a generated-benchmark-like question layout (per-document tasks and a joint task repeating their
questions, the sample's real paragraphs, questions and references); the rate and its Wilson interval in the benchmark
card, the verdict and the headline; stale judgements of a re-generated benchmark counted and ignored; the Wilson
interval against an independent computation."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from sling.io import write_json, write_jsonl
from sling.scoring.audit import NOT_AUDITED, Item, audit_of_benchmark, benchmark_items, judgement, show, summarise
from sling.scoring.report import card_html, headline_html
from sling.scoring.stats import wilson_interval
from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "audit.py"
SAMPLE = ROOT / "corpus" / "sample" / "benchmark" / "joint.jsonl"


def write_benchmark(work, change: dict[str, str] | None = None) -> list[dict]:
    """The benchmark stage's layout for data=documents: one task per document (ids `<task>-NN`), and a joint task
    holding the same questions under the same ids; rows as `sling.data.benchmark.question_record` writes them.
    `change`: id -> a new question (a re-generated benchmark)."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    per_task: dict[str, list[dict]] = {}
    for r in rows:
        task = r["document"].split(".")[0].replace("_", "-")
        qid = f"{task}-{len(per_task.get(task, [])) + 1:02d}"
        question = (change or {}).get(qid, r["question"])
        per_task.setdefault(task, []).append({
            "id": qid, "question": question, "text": r["text"], "document": r["document"], "doc_id": task,
            "page": 1, "para_num": 1, "paragraph_hash": qid, "language": "en", "reference": r["reference"],
            "reference_source": "oracle:embedded:SmolLM2-135M-Instruct"})
    first, second = per_task["lora"][0], per_task["rag"][0]  # a multi-hop question across two documents
    per_task["multihop"] = [{**first, "id": "multihop-01", "question": "How does LoRA's frozen matrix relate to "
                             "what the retriever returns?", "text": f"{first['text']}\n\n{second['text']}",
                             "question_type": "multihop", "hops": [
                                 {k: q[k] for k in ("document", "doc_id", "page", "paragraph_hash", "text")}
                                 for q in (first, second)]}]
    per_task["joint"] = [q for t in list(per_task.values()) for q in t]
    for task, questions in per_task.items():
        write_jsonl(work / f"data/benchmark/questions/{task}.jsonl", questions)
    write_json(work / "data/benchmark/tasks.json",
               {"tasks": {t: {"documents": [], "questions": f"data/benchmark/questions/{t}.jsonl"} for t in per_task}})
    return per_task["joint"]


def audit_script(*args: str, work, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          env={**__import__("os").environ, "SLING_WORKDIR": str(work)}, **kw)


def test_the_audit_from_a_file_reaches_the_card_and_the_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    questions = write_benchmark(tmp_path)
    assert len(questions) == 11 and "multihop-01" in [q["id"] for q in questions]
    invalid = {"lora-02": "the reference adds a claim the paragraph does not make",
               "rag-01": "asks about 'the method' without naming it"}
    answers = tmp_path / "answers.csv"
    answers.write_text("id,valid,why\n" + "".join(
        f"{q['id']},{'invalid' if q['id'] in invalid else 'valid'},\"{invalid.get(q['id'], '')}\"\n"
        for q in questions if q["id"] != "multihop-01"), encoding="utf-8")
    done = audit_script("--answers", str(answers), work=tmp_path)
    assert done.returncode == 0, done.stderr
    # 8 of 10 at 95%: Wilson [0.490, 0.943]
    line = "a person judged 8 of 10 valid: 80% [49%, 94%] (Wilson 95% interval)"
    assert line in done.stdout and invalid["rag-01"] in done.stdout and "(11 questions in the benchmark)" in done.stdout

    saved = [json.loads(x) for x in (tmp_path / "data/benchmark/audit.jsonl").read_text().splitlines()]
    assert [j["id"] for j in saved] == [q["id"] for q in questions if q["id"] != "multihop-01"]
    assert all(len(j["item_hash"]) == 16 and j["valid"] == (j["id"] not in invalid) for j in saved)

    audit = audit_of_benchmark(tmp_path / "data/benchmark/audit.jsonl", 0.95)
    assert (audit.judged, audit.valid, audit.stale) == (10, 8, 0)  # the joint task's repeats counted once
    assert line in card_html({}, None, audit.line())
    assert line in headline_html({}, __import__("pandas").DataFrame(), "base", audit.line())
    assert audit.headline() == {"benchmark_audit": {"judged": 10, "valid": 8, "rate": 0.8, "low": 0.4902,
                                                    "high": 0.9433, "stale": 0}}

    # The benchmark generated again: two questions changed under their old ids. Their judgements are stale.
    write_benchmark(tmp_path, change={"lora-01": "What does matrix B start at?",
                                      "rag-01": "What does the retriever return for a question?"})
    audit = audit_of_benchmark(tmp_path / "data/benchmark/audit.jsonl", 0.95)
    assert (audit.judged, audit.valid, audit.stale) == (8, 7, 2)
    assert audit.line().startswith("a person judged 7 of 8 valid: 88% [")
    assert audit.line().endswith("; 2 stale judgements (of questions no longer in the benchmark) ignored")
    done = audit_script("--rate", work=tmp_path)
    assert "7 of 8 valid" in done.stdout and "2 stale" in done.stdout


def test_without_an_audit_the_card_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    write_benchmark(tmp_path)
    (tmp_path / "data/benchmark/audit.jsonl").write_text("")  # as committed: the empty audit
    audit = audit_of_benchmark(tmp_path / "data/benchmark/audit.jsonl", 0.95)
    assert audit.line() == NOT_AUDITED == "not audited by a person"
    assert audit.headline() == {}  # an unaudited run's metrics/report.json keeps its keys
    assert "Validity audit (scripts/audit.py): not audited by a person." in card_html({}, None, audit.line())


def test_answers_naming_no_question_of_the_benchmark_are_refused(tmp_path):
    write_benchmark(tmp_path)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": "lora-01", "valid": True}) + "\n"
                       + json.dumps({"id": "old-07", "valid": False, "why": "vague"}) + "\n")
    done = audit_script("--answers", str(answers), work=tmp_path)
    assert done.returncode == 1 and "old-07" in done.stderr and "no question of the current benchmark" in done.stderr
    assert not (tmp_path / "data/benchmark/audit.jsonl").exists()
    answers.write_text(json.dumps({"id": "lora-01", "valid": "maybe"}) + "\n")
    done = audit_script("--answers", str(answers), work=tmp_path)
    assert done.returncode == 1 and "write valid or invalid" in done.stderr


def test_the_terminal_asks_saves_each_answer_and_stops_on_quit(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    write_benchmark(tmp_path)
    multihop = next(it for it in benchmark_items() if it.id == "multihop-01")
    assert multihop.task == "multihop" and multihop.document == "lora.md, page 1 + rag.html, page 1"
    assert "two smaller matrices" in show(multihop) and "retrieve" in show(multihop)  # both of its paragraphs
    spec = importlib.util.spec_from_file_location("audit_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    replies = iter(["y", "", "maybe", "n", "the reference is not in the paragraph", "s", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(replies))
    script.main(["--n", "5", "--seed", "3"])
    out = capsys.readouterr().out
    assert "Paragraph:" in out and "Reference:" in out and "answer one of" in out
    saved = [json.loads(x) for x in (tmp_path / "data/benchmark/audit.jsonl").read_text().splitlines()]
    assert [j["valid"] for j in saved] == [True, False] and saved[1]["why"] == "the reference is not in the paragraph"
    assert "a person judged 1 of 2 valid: 50%" in out
    # the next session draws from the questions not judged yet
    replies = iter(["y", ""] * 9)
    script.main(["--n", "20", "--seed", "3"])
    assert len((tmp_path / "data/benchmark/audit.jsonl").read_text().splitlines()) == 11


def test_wilson_interval_matches_an_independent_computation():
    """21 of 25 at 95%: [0.653, 0.936] (Wilson 1927; also scipy's binomtest(...).proportion_ci(method='wilson'))."""
    assert wilson_interval(21, 25, 0.95) == pytest.approx([0.653, 0.936], abs=6e-4)
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n, ci in ((21, 25, 0.95), (0, 12, 0.95), (12, 12, 0.9), (3, 40, 0.99), (7, 9, 0.8)):
        ref = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=ci, method="wilson")
        assert wilson_interval(k, n, ci) == pytest.approx([ref.low, ref.high], abs=1e-4), (k, n, ci)
    items = [Item(f"q{i}", "t", f"question {i}?", "reference", "paragraph", "doc.pdf", 1) for i in range(25)]
    audit = summarise([judgement(it, i < 21, "") for i, it in enumerate(items)], items, 0.95)
    assert audit.line() == "a person judged 21 of 25 valid: 84% [65%, 94%] (Wilson 95% interval)"
