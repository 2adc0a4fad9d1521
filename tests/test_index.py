"""The index stage: token windows, by-title sections, idempotent upserts into a real embedded Qdrant,
and retrieval of a known source paragraph.

The student tokenizer is a small word-level tokenizer built in the test and saved as `models/base` in a tmp
work root (the real snapshot is not needed to count tokens); embeddings are the packaged MiniLM.
"""
from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from sling.retrieval.chunking import chunk_sections, histogram, window
from tests.conftest import venv_env

DOCS = {
    "lora.md": """# Low-rank adapters

LoRA freezes the pretrained weight matrix and learns two small matrices whose product is added to it.
The rank of the adapter decides how many parameters are trained; rank sixteen on the attention projections
of a small model trains under two million parameters.

# Merging

After training, the adapter matrices can be multiplied and added to the frozen weights, so inference
costs nothing extra. Stacked adapters are merged in order.
""",
    "qdrant.md": """# Vector stores

Qdrant stores embedding vectors with a payload and answers nearest-neighbour queries by cosine distance.
An embedded Qdrant keeps its collections in a local folder and needs no server process.
""",
    "bakery.md": """# Sourdough

A sourdough starter is a culture of wild yeast and lactic acid bacteria kept alive with flour and water.
Bakers feed the starter daily and bake when it has doubled in volume after a feeding.
""",
}


def tiny_tokenizer(texts: list[str]):
    """A word-level fast tokenizer over `texts` with <pad>/<eos>, saveable like a real snapshot's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["<pad>", "<eos>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def write_docs(folder, docs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.md"):
        old.unlink()
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    tiny_tokenizer(list(DOCS.values()) + ["Stacked adapters are removed."]).save_pretrained(tmp_path / "models" / "base")
    write_docs(tmp_path / "docs", DOCS)
    return tmp_path


def overrides(root, *extra: str) -> list[str]:
    questions = root / "questions.jsonl"
    if not questions.exists():
        questions.write_text(json.dumps({"id": "q1", "question": "What does LoRA train?", "reference": "Adapters."}) + "\n")
    return [f"data.tasks={{single:{{documents:'{root / 'docs' / 'lora.md'}',questions:'{questions}'}},"
            f"joint:{{documents:'{root / 'docs'}',questions:'{questions}'}}}}",
            "rag.chunk_tokens=40", "rag.chunk_overlap=8", *extra]


def main(argv: list[str]) -> None:
    """The benchmark stage lists the tasks' documents (named in data.tasks), then the index stage runs."""
    from pipeline.benchmark import main as benchmark
    from pipeline.index import main as index

    benchmark(argv)
    index(argv)


def indexed(root, task: str) -> dict[str, str]:
    """Point id -> chunk text, read back from the embedded Qdrant store."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(root / "index" / "qdrant"))
    try:
        points, _ = client.scroll(f"sling_{task}", limit=1000, with_payload=True)
        return {str(p.id): p.payload["text"] for p in points}
    finally:
        client.close()


def test_window_covers_every_token_with_the_overlap():
    spans = window(list(range(100)), 40, 8)
    assert spans == [(0, 40), (32, 72), (64, 100)]
    assert window(list(range(10)), 40, 8) == [(0, 10)]


def test_by_title_packs_whole_sections_and_splits_only_long_ones():
    tok = tiny_tokenizer(["alpha beta gamma delta " * 10, "Intro", "Long", "Tail", "end"])
    secs = [{"text": "Intro\nalpha beta", "pages": [1]}, {"text": "Tail\nend", "pages": [1]},
            {"text": "Long\n" + "alpha beta gamma delta " * 10, "pages": [2, 3]}, {"text": "Tail\nend", "pages": [4]}]
    chunks = chunk_sections(secs, tok, size=16, overlap=4, document="d.md")
    assert chunks[0]["text"] == "Intro alpha beta Tail end" and chunks[0]["n_tokens"] == 5  # two short sections, packed
    # 41 tokens in windows of 16 that share 4: starts 0, 12, 24, 36; the long section is never packed with others
    assert [c["n_tokens"] for c in chunks[1:5]] == [16, 16, 16, 5] and all(c["pages"] == [2, 3] for c in chunks[1:5])
    assert chunks[5]["text"] == "Tail end" and chunks[5]["pages"] == [4]


def test_histogram_counts_every_chunk():
    bins = histogram([1, 5, 39, 40, 40], size=40, bins=4)
    assert sum(b["chunks"] for b in bins) == 5
    assert bins[0] == {"n_tokens": "0-9", "chunks": 2} and bins[-1]["chunks"] == 2


@pytest.mark.slow  # six index runs (ingest, embed, upsert) in a real embedded Qdrant
@pytest.mark.parametrize("chunking", ["tokens", "by_title"])
def test_indexing_twice_is_idempotent_and_removes_stale_points(workdir, chunking):
    main(overrides(workdir, f"rag.chunking={chunking}"))
    first = indexed(workdir, "joint")
    chunks = [json.loads(line) for line in (workdir / "index/chunks/joint.jsonl").read_text().splitlines()]
    assert first and set(first) == {c["id"] for c in chunks}
    assert {c["document"] for c in chunks} == set(DOCS)
    assert sum(b["chunks"] for b in json.loads((workdir / "plots/chunk_lengths/joint.json").read_text())) == len(chunks)

    main(overrides(workdir, f"rag.chunking={chunking}"))
    assert indexed(workdir, "joint") == first  # same ids, same texts, same count

    write_docs(workdir / "docs", {k: v for k, v in DOCS.items() if k != "bakery.md"})
    main(overrides(workdir, f"rag.chunking={chunking}"))
    after = indexed(workdir, "joint")
    assert after and not any("sourdough" in t.lower() for t in after.values())
    assert set(after) < set(first)  # unchanged documents keep their ids; the removed one's points are gone


def test_the_index_stage_writes_the_same_bytes_whatever_the_callers_hash_seed(workdir):
    """The embedded Qdrant store pickles points, and pickled sets follow the process's string hash seed: run as
    dvc.yaml says, the stage writes the same store bytes under two different outer seeds (CI compares dvc.lock)."""
    import yaml

    from pipeline.benchmark import main as benchmark

    root = Path(__file__).resolve().parents[1]
    cmd = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["index"]["cmd"]
    argv = overrides(workdir)
    benchmark(argv)
    stores = []
    for seed in ("1", "2"):
        subprocess.run(["rm", "-rf", str(workdir / "index")], check=True)
        env = venv_env({"PYTHONHASHSEED": seed, "SLING_WORKDIR": str(workdir)})  # the stage's `python`: this one
        done = subprocess.run(f"{cmd} {shlex.join(argv)}", shell=True, cwd=root, env=env, capture_output=True,
                              text=True, executable="/bin/sh")
        assert done.returncode == 0, done.stderr[-2000:]
        stores.append({p.relative_to(workdir / "index").as_posix(): p.read_bytes()
                       for p in sorted((workdir / "index").rglob("*")) if p.is_file()})
    assert any(name.endswith("storage.sqlite") for name in stores[0])
    assert stores[0] == stores[1]


def test_by_title_chunks_never_cut_a_section_that_fits(workdir):
    main(overrides(workdir, "rag.chunking=by_title", "rag.chunk_tokens=60", "rag.chunk_overlap=10"))
    texts = [json.loads(line)["text"] for line in (workdir / "index/chunks/single.jsonl").read_text().splitlines()]
    # lora.md: "Low-rank adapters" (about 50 words) and "Merging" (about 25) do not fit in one chunk together.
    assert len(texts) == 2 and texts[0].startswith("Low-rank adapters") and texts[1].startswith("Merging")
    assert texts[0].rstrip().endswith("two million parameters.") and texts[1].rstrip().endswith("merged in order.")


def test_retrieval_finds_the_known_source_paragraph(workdir):
    from sling.config import load_config
    from sling.retrieval.answering import retrieve
    from sling.retrieval.store import qdrant_client
    from sling.scoring.metrics import retrieval_metrics

    main(overrides(workdir))
    cfg = load_config(overrides(workdir, "rag.top_k=2"))
    questions = [
        {"question": "How often do bakers feed a sourdough starter?",
         "text": "Bakers feed the starter daily and bake when it has doubled in volume after a feeding."},
        {"question": "Does an embedded Qdrant need a server?",
         "text": "An embedded Qdrant keeps its collections in a local folder and needs no server process."},
        {"question": "What decides how many parameters LoRA trains?",
         "text": "The rank of the adapter decides how many parameters are trained"},
    ]
    client = qdrant_client(cfg.rag)
    try:
        hits = retrieve(cfg.rag, client, "joint", questions)
    finally:
        client.close()
    assert all(len(h) == 2 for h in hits)
    metrics, ranks = retrieval_metrics([q["text"] for q in questions], hits, 2, cfg.eval, cfg.seed)
    assert ranks == [1, 1, 1] and metrics["recall_at_2"] == 1.0 and metrics["mrr"] == 1.0
    # The same retrieved lists scored against the wrong sources find nothing: the metric can fail.
    wrong, _ = retrieval_metrics([questions[1]["text"], questions[2]["text"], questions[0]["text"]], hits, 2, cfg.eval, cfg.seed)
    assert wrong["recall_at_2"] == 0.0


def test_the_index_provenance_records_the_keys_its_stage_declares():
    """The index's provenance holds the rag keys dvc.yaml lists as the stage's params, no more: a key it does not read
    (rag.batch_size, a decoding setting) changed the index's bytes while DVC saw no change in its inputs."""
    import yaml

    from pipeline.index import INDEX_RAG_KEYS

    root = Path(__file__).resolve().parent.parent
    params = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["index"]["params"]
    assert set(INDEX_RAG_KEYS) == {p.split(".", 1)[1] for p in params if p.startswith("rag.")}
    assert "ingest" in params


def test_the_index_depends_on_the_split_and_not_on_the_questions():
    """The index stage reads the benchmark's collections (decided by the split), not its task list or question files:
    a benchmark-side change (fewer questions per document, a task the questions left empty) must not rebuild it (the
    slow tier's seeded experiment in tests/test_pipeline.py checks that DVC does not)."""
    import yaml

    from sling.paths import COLLECTIONS, QUESTIONS_DIR, TASKS

    root = Path(__file__).resolve().parent.parent
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    deps = stages["index"]["deps"]
    assert COLLECTIONS in deps and TASKS not in deps and QUESTIONS_DIR not in deps
    assert COLLECTIONS in stages["benchmark"]["outs"]
