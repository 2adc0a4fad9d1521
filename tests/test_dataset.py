"""build_dataset: each filter drops what it should and counts it; the eval split is seeded, by document where whole
documents fit within dataset.eval_max_share and by paragraph otherwise; every row carries lineage and both formats; a
re-run writes identical bytes."""
from __future__ import annotations

import json

import pytest

from pipeline import build_dataset
from sling.data.dataset import split_eval
from sling.io import write_jsonl

LONG = ("Low-rank adaptation keeps the pretrained weights frozen and learns two small matrices whose product "
        "corrects selected weight matrices of the attention layers during fine-tuning. ")


def row(doc: str, n: int, question: str, answer: str, paragraph: str | None = None) -> dict:
    paragraph = paragraph or f"{LONG}Document {doc} paragraph {n} adds that the rank r is much smaller than the width."
    return {"doc_id": doc, "document": f"{doc}.pdf", "page": n, "para_num": n, "paragraph_hash": f"{doc}{n:04d}",
            "paragraph": paragraph, "question": question, "answer": answer, "teacher": "openai:test",
            "prompt_version": "v1", "seed": 42, "question_index": 0}


GOOD = "The pretrained weights stay frozen and two small matrices are learned."


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    rows = [row(f"d{d}", n, f"What does document d{d} say in paragraph {n} about rank number {n * 7 + d}?", GOOD)
            for d in range(5) for n in range(1, 5)]
    rows += [
        row("d0", 10, "What is short here?", GOOD, paragraph="Too short a paragraph."),            # short_paragraph
        row("d1", 11, "", GOOD),                                                                  # empty question
        row("d1", 12, "What is the rank?", "I'm sorry, I cannot answer that from the text."),    # refusal
        row("d2", 13, "What is the rank of the moon?", "Bananas are yellow and grow in tropical climates."),  # ungrounded
        row("d4", 14, "What is the answer to this question?", GOOD),                              # off-topic
        row("d3", 1, "What does document d3 say in paragraph 1 about rank number 10?", GOOD),    # near-duplicate of d3/1
        row("d2", 15, "The text asks a question about the rank of the matrices.", GOOD),         # not a question
        row("d0", 16, "What does the text say about the pretrained weights?", GOOD),             # points at its source
        row("d1", 17, "What stays frozen during fine-tuning?", "What stays frozen during fine-tuning?"),  # repeated
        row("d4", 18, "Why is the rank r much smaller than the width?", GOOD,                    # copies its paragraph
            paragraph=f"{LONG}Why is the rank r much smaller than the width? The pretrained weights stay frozen."),
        row("d3", 19, "What stays frozen when the adapter is trained?", GOOD) | {"language": "es"},  # asked in Spanish
        row("d2", 20, "What is a term, tool or thing that stays frozen?", GOOD),                  # echoes its prompt
    ]
    write_jsonl(tmp_path / "data/synthetic/qa.jsonl", rows)
    return tmp_path


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_filters_drop_and_count_each_case(work):
    build_dataset.main(["dataset.min_paragraph_percentile=5"])
    metrics = json.loads((work / "metrics/dataset.json").read_text())
    assert metrics["input_rows"] == 32
    assert metrics["dropped"] == {"short_paragraph": 1, "empty_or_malformed": 1, "refusal": 1, "wrong_language": 1,
                                  "not_a_question": 1,
                                  "points_at_source": 1, "echoes_prompt": 1, "reference_repeats_question": 1,
                                  "question_copies_paragraph": 1, "off_topic_question": 1, "ungrounded_answer": 1,
                                  "near_duplicate_question": 1}
    assert metrics["kept"] == 20 == metrics["train_rows"] + metrics["eval_rows"]


def test_split_is_by_document_seeded_with_a_manifest(work):
    build_dataset.main([])
    train = read(work / "data/datasets/domain/train.jsonl")
    eval_ = read(work / "data/datasets/domain/eval.jsonl")
    split = json.loads((work / "data/datasets/domain/split.json").read_text())
    assert {r["doc_id"] for r in train}.isdisjoint({r["doc_id"] for r in eval_})
    assert set(split["train"]) == {r["doc_id"] for r in train} and set(split["eval"]) == {r["doc_id"] for r in eval_}
    assert len(split["eval"]) == 1  # 20% of 5 documents
    assert "by" not in split  # a by-document manifest: the documents of each side
    metrics = json.loads((work / "metrics/dataset.json").read_text())
    assert metrics["split"] == {"by": "document", "eval_share": 0.2, "eval_max_share": 0.3}
    rows = [{"doc_id": f"d{d}", "paragraph_hash": f"p{n}"} for d in range(5) for n in range(4)]
    assert split_eval(rows, 0.2, 0.3, seed=7) == split_eval(rows, 0.2, 0.3, seed=7)


def small_folder(sizes: dict[str, list[int]]) -> list[dict]:
    """Kept rows of a folder: per document, the number of rows of each of its paragraphs."""
    return [{"doc_id": d, "paragraph_hash": f"{d}-p{p}"} for d, paragraphs in sizes.items()
            for p, n in enumerate(paragraphs) for _ in range(n)]


def test_a_small_folder_is_split_by_paragraph_within_the_share():
    """Issue 30's folder: 36 kept rows, a document of 24 and one of 12, where the split by document took 24 for eval.
    No whole document fits within 30% of the rows, so whole paragraphs go to eval instead: about eval_fraction of the
    rows, never past the share, no paragraph on both sides."""
    rows = small_folder({"manual": [3, 2, 4, 3, 2, 3, 4, 3], "guide": [2, 3, 2, 1, 2, 2]})
    assert len(rows) == 36
    for seed in range(20):
        split = split_eval(rows, 0.2, 0.3, seed)
        eval_rows = split.sides.count("eval")
        assert split.by == "paragraph" and 5 <= eval_rows <= 10  # target round(0.2 * 36) = 7, cap int(0.3 * 36) = 10
        sides = {}
        for r, side in zip(rows, split.sides):
            assert sides.setdefault(r["paragraph_hash"], side) == side  # all of a paragraph's rows on one side
        assert sorted(h for h, s in sides.items() if s == "eval") == split.eval_paragraphs
    assert len({tuple(split_eval(rows, 0.2, 0.3, seed).sides) for seed in range(20)}) > 1  # seeded, not fixed
    # one document alone: by paragraph as well (before, its eval split was empty)
    alone = split_eval(small_folder({"thesis": [2] * 10}), 0.2, 0.3, seed=1)
    assert alone.by == "paragraph" and alone.sides.count("eval") == 4
    # too few rows for the share to hold a paragraph: nothing held out, rather than a third of the rows
    assert split_eval(small_folder({"a": [2], "b": [1]}), 0.2, 0.3, seed=1).by == "none"


def test_the_share_is_respected_and_documents_that_fit_are_preferred():
    """A document too large for the share is passed over for the next one in the seeded order that fits; the eval
    side never holds more than eval_max_share of the rows, whatever the seed and the share."""
    rows = small_folder({"big": [10, 10], "a": [2, 2], "b": [3], "c": [2, 1]})  # 33 rows: big alone is 61%
    for seed in range(30):
        split = split_eval(rows, 0.25, 0.3, seed)
        assert split.by == "document" and split.documents(rows, "eval") != ["big"]
        assert "big" in split.documents(rows, "train") and split.sides.count("eval") <= 9
    for share in (0.05, 0.1, 0.2, 0.3, 0.5):
        for seed in range(10):
            split = split_eval(rows, 0.2, share, seed)
            assert split.sides.count("eval") <= share * len(rows)


def test_a_folder_of_many_documents_splits_by_document():
    """Forty documents of 3 to 8 rows: the split holds out whole documents, 20% of them, as before the cap."""
    rows = small_folder({f"doc{i:02d}": [1 + i % 3, 2 + i % 6] for i in range(40)})
    split = split_eval(rows, 0.2, 0.3, seed=42)
    eval_docs, train_docs = split.documents(rows, "eval"), split.documents(rows, "train")
    assert split.by == "document" and len(eval_docs) == 8 and not set(eval_docs) & set(train_docs)
    assert split.sides.count("eval") <= 0.3 * len(rows) and split.eval_paragraphs == []


def test_build_dataset_records_a_split_by_paragraph(work):
    """The stage on a folder whose documents are each too large for the share: the manifest lists the held-out
    paragraphs and metrics/dataset.json says how it split."""
    build_dataset.main(["dataset.eval_max_share=0.1"])  # 20 kept rows: a document (4 rows) is above 2
    metrics = json.loads((work / "metrics/dataset.json").read_text())
    assert metrics["split"] == {"by": "paragraph", "eval_share": 0.1, "eval_max_share": 0.1}
    assert (metrics["train_rows"], metrics["eval_rows"]) == (18, 2)
    split = json.loads((work / "data/datasets/domain/split.json").read_text())
    eval_ = read(work / "data/datasets/domain/eval.jsonl")
    assert split["by"] == "paragraph" and split["eval_paragraphs"] == sorted({r["paragraph_hash"] for r in eval_})
    train_paragraphs = {r["paragraph_hash"] for r in read(work / "data/datasets/domain/train.jsonl")}
    assert not train_paragraphs & set(split["eval_paragraphs"])


def test_rows_carry_lineage_and_both_formats(work):
    build_dataset.main([])
    for r in read(work / "data/datasets/domain/train.jsonl"):
        for key in ("doc_id", "document", "page", "paragraph_hash", "teacher", "prompt_version", "seed"):
            assert r[key] is not None, key
        assert r["text"] == f"{r['prompt']} {r['response']}"
        assert r["messages"] == [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}]
        assert "### Response:" in r["prompt"] and r["question"] in r["prompt"]


def test_rerun_is_byte_identical(work):
    build_dataset.main([])
    first = {p.name: p.read_bytes() for p in (work / "data/datasets/domain").iterdir()}
    build_dataset.main([])
    assert first == {p.name: p.read_bytes() for p in (work / "data/datasets/domain").iterdir()}


def test_everything_filtered_is_an_error_not_an_empty_set(work):
    with pytest.raises(ValueError, match="filtered out"):
        build_dataset.main(["dataset.min_grounding=0.99", "dataset.refusal_patterns=[the]"])


def test_raft_rows_mix_the_gold_paragraph_with_distractors_from_other_documents(work):
    """RAFT-style prompts: the answer stage's RAG prompt with distractors retrieved from other training documents;
    a seeded share of rows without the gold paragraph answers that the context does not hold the answer."""
    build_dataset.main(["dataset.raft.enabled=true", "dataset.raft.distractors=2", "dataset.raft.no_gold_share=0.3",
                        "dataset.eval_fraction=0"])
    rows = [json.loads(line) for line in (work / "data/datasets/domain/train.jsonl").read_text().splitlines()]
    paragraphs = {r["paragraph_hash"]: r["paragraph"] for r in
                  (json.loads(line) for line in (work / "data/synthetic/qa.jsonl").read_text().splitlines())}
    documents = {h: h[:2] for h in paragraphs}
    absent = [r for r in rows if not r["raft"]["gold_in_context"]]
    assert 0 < len(absent) < len(rows)  # a seeded share, neither none nor all
    for r in rows:
        raft = r["raft"]
        own = paragraphs[r["paragraph_hash"]]
        assert r["prompt"].startswith("Below is an instruction") and f"### Input: {r['question']}" in r["prompt"]
        assert all(documents[h] != r["doc_id"] for h in raft["distractor_hashes"])  # other documents only
        assert all(paragraphs[h] in r["prompt"] for h in raft["distractor_hashes"])
        if raft["gold_in_context"]:
            assert len(raft["distractor_hashes"]) == 2 and own in r["prompt"] and r["response"] == GOOD
            assert raft["gold_position"] in (0, 1, 2)
        else:
            assert len(raft["distractor_hashes"]) == 3 and own not in r["prompt"]
            assert r["response"] == "The context does not contain the answer to this question."
    metrics = json.loads((work / "metrics/dataset.json").read_text())
    assert metrics["raft"] == {"rows_without_gold": len(absent), "rows_short_of_distractors": 0}
    # Off (the default, and the paper's recipe): the paragraph alone, as before.
    build_dataset.main(["dataset.eval_fraction=0"])
    plain = [json.loads(line) for line in (work / "data/datasets/domain/train.jsonl").read_text().splitlines()]
    assert all("raft" not in r and "Text: " in r["prompt"] for r in plain)


@pytest.mark.parametrize("language,paragraph,on_topic,off_topic_q,grounded,ungrounded", [
    ("ru", "Команда apt-get устанавливает пакеты из репозитория Debian и обновляет их.",
     "Что устанавливает команда apt-get?", "Когда родился автор книги?", "apt-get устанавливает пакеты",
     "удаляет старые ядра"),
    ("el", "Η εντολή apt-get εγκαθιστά πακέτα από το αποθετήριο του Debian.",
     "Τι εγκαθιστά η εντολή apt-get;", "Πότε γεννήθηκε ο συγγραφέας;", "εγκαθιστά πακέτα", "διαγράφει αρχεία"),
    ("ja", "apt-get コマンドは Debian のリポジトリからパッケージを入れる。",
     "apt-get コマンドは何を入れるか？", "著者はいつ生まれたか？", "パッケージを入れる", "古い核を消す"),
])
def test_the_filters_read_words_of_any_script(language, paragraph, on_topic, off_topic_q, grounded, ungrounded):
    """A word is letters of any script (Han and kana one character each): before, only [a-z0-9] counted, so every
    question in Cyrillic, Greek or Arabic named nothing of its paragraph ("off topic") and every answer was
    "grounded"."""
    from sling.text import support
    from sling.teacher.quality import off_topic

    assert not off_topic(on_topic, paragraph) and off_topic(off_topic_q, paragraph)
    assert support(grounded, paragraph) == 1.0 and support(ungrounded, paragraph) < 0.5
