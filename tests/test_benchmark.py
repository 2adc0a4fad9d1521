"""The held-out benchmark: the document split, and the leakage check between the training set and the benchmark.

The split is checked on manifest entries; the leakage stage runs for real (packaged MiniLM embeddings) on a
training set and benchmark questions written here, once with a near-duplicate and an overlapping paragraph.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.config import ConfigError, compose


def docs(n: int) -> list[dict]:
    return [{"document": f"paper{i}.pdf", "doc_id": f"id{i}", "sha256": hashlib.sha256(str(i).encode()).hexdigest()}
            for i in range(n)]


def cfg(*overrides: str):
    return compose(["data=documents", "data.corpus_dir=papers", *overrides])


def test_split_is_seeded_by_document_and_moves_one_document_at_most_when_one_is_added():
    from pipeline.benchmark import split_documents

    train, bench = split_documents(cfg(), docs(8))
    assert len(bench) == 2 and len(train) == 6 and not {d["doc_id"] for d in train} & {d["doc_id"] for d in bench}
    assert split_documents(cfg(), docs(8)) == (train, bench)  # seeded: the same split every time
    assert split_documents(cfg("seed=7"), docs(8))[1] != bench  # another seed, another split
    _, bench9 = split_documents(cfg(), docs(9))  # 9 documents hold out round(2.25) = 2
    assert len({d["doc_id"] for d in bench} ^ {d["doc_id"] for d in bench9}) <= 2
    assert len(split_documents(cfg("data.split.benchmark_fraction=0.9"), docs(3))[0]) == 1  # never all held out


def test_split_by_name_and_its_errors():
    from pipeline.benchmark import BenchmarkError, split_documents

    train, bench = split_documents(cfg("data.split.benchmark_documents=[paper3.pdf]"), docs(4))
    assert [d["document"] for d in bench] == ["paper3.pdf"] and len(train) == 3
    with pytest.raises(ConfigError, match=r"names \['nope.pdf'\], which ingest did not produce"):
        split_documents(cfg("data.split.benchmark_documents=[nope.pdf]"), docs(4))
    with pytest.raises(BenchmarkError, match="at least two"):
        split_documents(cfg(), docs(1))


@pytest.fixture
def leakage_workdir(tmp_path, monkeypatch):
    """A training set and a two-question benchmark, one of whose questions is in the training set almost verbatim."""
    from pipeline.io import write_jsonl

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    train = [{"question": "How many quantization levels does NF4 use?", "paragraph_hash": "aaa", "document": "a.pdf"},
             {"question": "What does a sourdough starter need every day?", "paragraph_hash": "bbb", "document": "b.pdf"}]
    write_jsonl(tmp_path / "data/datasets/domain/train.jsonl", train)
    write_jsonl(tmp_path / "data/datasets/domain/eval.jsonl", [])
    questions = [{"id": "c-01", "question": "How many quantization levels does NF4 use?", "paragraph_hash": "ccc",
                  "document": "c.pdf"},
                 {"id": "c-02", "question": "Which port does the Qdrant server listen on?", "paragraph_hash": "bbb",
                  "document": "c.pdf"}]
    write_jsonl(tmp_path / "data/benchmark/questions/c.jsonl", questions)
    write_jsonl(tmp_path / "data/benchmark/questions/all.jsonl", questions)
    (tmp_path / "data/benchmark/tasks.json").write_text(json.dumps({"tasks": {"c": {}, "all": {}}}))
    return tmp_path


def test_leakage_above_the_limit_stops_the_run_and_names_the_pairs(leakage_workdir):
    from pipeline.leakage import LeakageError, main

    with pytest.raises(LeakageError) as err:
        main(["data=documents", "data.corpus_dir=papers", "data.leakage_max=0"])
    assert "2 benchmark questions leak" in str(err.value)
    assert "c-01: 'How many quantization levels does NF4 use?'" in str(err.value)
    assert "c-02: its source paragraph bbb is in the training set" in str(err.value)
    out = json.loads((leakage_workdir / "metrics/leakage.json").read_text())  # written before it stops
    assert (out["benchmark_questions"], out["near_duplicate_questions"], out["paragraph_overlap"]) == (2, 1, 1)


def test_leakage_within_the_limit_is_reported(leakage_workdir):
    from pipeline.leakage import main

    main(["data=documents", "data.corpus_dir=papers", "data.leakage_max=2"])
    out = json.loads((leakage_workdir / "metrics/leakage.json").read_text())
    assert out["leaked"] == 2 and out["pairs"][0]["cosine"] > 0.99 and out["shared_documents"] == []
