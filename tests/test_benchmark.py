"""The held-out benchmark: the document split, and the leakage check between the training set and the benchmark.

The split is checked on manifest entries; the leakage stage runs for real (packaged MiniLM embeddings) on a
training set and benchmark questions written here, once with a near-duplicate and an overlapping paragraph.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from sling.config import compose
from sling.errors import ConfigError


def docs(n: int) -> list[dict]:
    return [{"document": f"paper{i}.pdf", "doc_id": f"id{i}", "sha256": hashlib.sha256(str(i).encode()).hexdigest()}
            for i in range(n)]


def cfg(*overrides: str):
    return compose(["data=documents", "data.corpus_dir=papers", *overrides])


def test_split_is_seeded_by_document_and_moves_one_document_at_most_when_one_is_added():
    from sling.data.benchmark import split_documents

    split = cfg().data.split
    train, bench = split_documents(split, 42, docs(8))
    assert len(bench) == 2 and len(train) == 6 and not {d["doc_id"] for d in train} & {d["doc_id"] for d in bench}
    assert split_documents(split, 42, docs(8)) == (train, bench)  # seeded: the same split every time
    assert split_documents(split, 7, docs(8))[1] != bench  # another seed, another split
    _, bench9 = split_documents(split, 42, docs(9))  # 9 documents hold out round(2.25) = 2
    assert len({d["doc_id"] for d in bench} ^ {d["doc_id"] for d in bench9}) <= 2
    most = cfg("data.split.benchmark_fraction=0.9").data.split
    assert len(split_documents(most, 42, docs(3))[0]) == 1  # never all held out


def test_split_by_name_and_its_errors():
    from sling.data.benchmark import BenchmarkError, split_documents

    train, bench = split_documents(cfg("data.split.benchmark_documents=[paper3.pdf]").data.split, 42, docs(4))
    assert [d["document"] for d in bench] == ["paper3.pdf"] and len(train) == 3
    with pytest.raises(ConfigError, match=r"names \['nope.pdf'\], which ingest did not produce"):
        split_documents(cfg("data.split.benchmark_documents=[nope.pdf]").data.split, 42, docs(4))
    with pytest.raises(BenchmarkError, match="at least two"):
        split_documents(cfg().data.split, 42, docs(1))


@pytest.fixture
def leakage_workdir(tmp_path, monkeypatch):
    """A training set and a two-question benchmark, one of whose questions is in the training set almost verbatim."""
    from sling.io import write_jsonl

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
    from pipeline.leakage import main
    from sling.scoring.leakage import LeakageError

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


def paragraphs_of(doc: str, texts: list[str]) -> list[dict]:
    from sling.io import sha256_text

    return [{"doc_id": f"id-{doc}", "document": doc, "page": 1, "para_num": i, "text": t,
             "paragraph_hash": sha256_text(t)[:16]} for i, t in enumerate(texts, 1)]


def test_documents_that_copy_each_other_stay_on_one_side_of_the_split():
    from sling.data.benchmark import split_documents

    # paper1.pdf reprints all of paper0.pdf (a paper inside its proceedings); the others share one boilerplate line
    shared = [f"Section {i} of the first paper, on adapters and their ranks." for i in range(6)]
    boiler = "Copyright notice of the publisher, printed on every document."
    paragraphs = (paragraphs_of("paper0.pdf", shared) + paragraphs_of("paper1.pdf", shared + ["An extra section."])
                  + [p for i in range(2, 8) for p in paragraphs_of(f"paper{i}.pdf", [boiler, f"Own text {i}.",
                                                                                      f"More own text {i}."])])
    for p in paragraphs:
        p["doc_id"] = "id" + p["document"].removeprefix("paper").removesuffix(".pdf")
    for seed in range(12):
        train, bench = split_documents(cfg().data.split, seed, docs(8), paragraphs)
        held = {d["document"] for d in bench}
        assert ("paper0.pdf" in held) == ("paper1.pdf" in held), seed  # the copies are never split apart
        assert len(bench) == 2 and len(train) == 6  # the share (round(8 / 4) = 2) still holds
    # without the grouping, some seed splits the pair: the check above is not vacuous
    ungrouped = cfg("data.split.group_overlap=null").data.split
    apart = [s for s in range(12) if len({d["document"] for d in split_documents(
        ungrouped, s, docs(8), paragraphs)[1]} & {"paper0.pdf", "paper1.pdf"}) == 1]
    assert apart


# One greedy candidate per paragraph with the teacher's reference, no round trip and no multi-hop pairs: what the
# tests of rounds and of the critic need of write_questions; the echoed prompt is one line that ends with a question
# mark, what a candidate keeps of a reply (sling.data.questions.clean_question: no one-word label opens it, no sentence
# ends inside it).
ONE_GREEDY = ["benchmark.samples_per_paragraph=1", "benchmark.question_types=[]", "benchmark.questions_per_paragraph=1",
              "benchmark.reference=teacher", "benchmark.findable_top_k=null", "benchmark.multihop.enabled=false",
              "benchmark.question_prompt='Question in {language} on: {paragraph}?'"]


def test_a_document_short_of_questions_after_the_filters_gets_more_paragraphs(tmp_path, monkeypatch):
    """Against a real OpenAI-compatible server (llm-katan's echo backend repeats the prompt): the benchmark document's
    paragraphs that read like a refusal are dropped by the refusal filter, and further rounds sample others."""
    from bench.bench_synthesis import katan_server
    from sling.data.benchmark import write_questions

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-local")
    topics = ["tide tables", "bread starters", "glacier speed", "violin varnish", "bee dances", "chess clocks",
              "rail gauges", "lichen growth"]
    texts = [(f"I cannot say much, but {t} were measured in the survey." if i % 2 else
              f"The survey measured {t} over four seasons and found them stable.") for i, t in enumerate(topics)]
    paragraphs = paragraphs_of("held.pdf", texts) + paragraphs_of("train.pdf", ["Training text on other matters."])
    bench = [{"doc_id": "id-held.pdf", "document": "held.pdf"}]
    with katan_server(tmp_path / "server", "--max-concurrent", "4") as server:
        def run(*extra):
            # the echo backend's question and reference both repeat their paragraph: no validity check can pass
            # them, and this test is about rounds, so the checks and the critic are off
            c = cfg("teacher=openai", f"teacher.base_url={server.base_url}", "teacher.model=echo",
                    "benchmark.questions_per_document=3", "benchmark.min_paragraph_chars=10",
                    "dataset.near_duplicate_cosine=0.9999", "dataset.min_grounding=0",
                    "dataset.drop_invalid_questions=false", "benchmark.critic.enabled=false",
                    *ONE_GREEDY, *extra)
            return write_questions(c.benchmark, c.teacher, c.model, c.dataset, c.rag, c.eval, c.seed, c.cache_dir,
                                   bench, paragraphs)

        one_round, stats1 = run("benchmark.max_rounds=1")
        rows, stats = run("benchmark.max_rounds=4")
    assert stats1["rounds"] == 1 and stats1["dropped"]["refusal"] > 0 and len(one_round) < 3
    assert len(rows) == 3, stats
    assert stats["rounds"] > 1 and stats["sampled_paragraphs"] > 3
    assert all("I cannot" not in r["paragraph"] for r in rows)
    assert [r["para_num"] for r in rows] == sorted(r["para_num"] for r in rows)  # in reading order
    assert stats["cache_hits"] >= 2 * 3  # the first round's calls were answered from the cache


# Real strings an embedded teacher wrote for benchmark questions on real documents, each with why it is not valid.
INVALID = [
    ("The text asks a question about the structure of the routine rhohxc.F90.", "It describes the routine.",
     "not_a_question"),
    ("The rule of notations is a proposal that can be modified or improved.", "The rule can be improved.",
     "not_a_question"),
    ("Explain how the cutoff energy is chosen", "By convergence studies of the total energy.", "not_a_question"),
    ("What is the main topic of the text?", "The text is about pseudopotentials.", "points_at_source"),
    ("According to the report, which solver is used for the DIMACS files?", "MiniSat reads the DIMACS files.",
     "points_at_source"),
    ("What does this paragraph say about the density mixing scheme?", "It uses Pulay mixing.", "points_at_source"),
    ("What is the purpose of the ecut variable in the input file?",
     "What is the purpose of the ecut variable in the input file?", "reference_repeats_question"),
    ("How is the kinetic energy cutoff of the plane-wave basis chosen?",
     "The kinetic energy cutoff of the plane-wave basis is chosen.", "reference_repeats_question"),
    ("Which keyword sets the number of bands in ABINIT?", "The keyword nband sets the number of bands in ABINIT, "
     "which keyword sets the number of bands in ABINIT?", "reference_repeats_question"),
    ("Why does the code use symmetrized densities in the irreducible zone?",
     "Symmetry lowers the cost of the calculation.", "question_copies_paragraph"),
]
PARAGRAPH = ("ABINIT reads its input file and then asks why does the code use symmetrized densities in the irreducible "
             "zone? Symmetry lowers the cost of the calculation, and the irreducible zone holds fewer k-points.")
VALID = [
    ("What does the ecut variable of ABINIT control?", "The kinetic energy cutoff of the plane-wave basis."),
    ("Which is larger in the irreducible zone, the number of k-points or of bands?", "bands"),
    ("How many k-points does the irreducible zone hold compared with the full Brillouin zone?",
     "Fewer, since symmetry maps the others onto them."),
    ("In which file does ABINIT read its parameters?", "In its input file."),
    ("Is Pulay mixing used for the density?", "Yes."),
]


@pytest.mark.parametrize("question,answer,why", INVALID)
def test_validity_checks_name_what_is_wrong_with_real_invalid_questions(question, answer, why):
    from sling.teacher.quality import validity_problem

    assert validity_problem(question, answer, PARAGRAPH) == why


@pytest.mark.parametrize("question,answer", VALID)
def test_validity_checks_pass_real_questions(question, answer):
    from sling.teacher.quality import validity_problem

    assert validity_problem(question, answer, PARAGRAPH) is None


def test_validity_checks_in_other_languages_ask_only_for_the_question_mark():
    from sling.teacher.quality import validity_problem

    assert validity_problem("¿Qué lee ABINIT al empezar?", "Su archivo de entrada.", PARAGRAPH, "es") is None
    assert validity_problem("ABINIT lee su archivo de entrada.", "Sí.", PARAGRAPH, "es") == "not_a_question"


# Real questions the embedded teacher wrote on glpk-doc's Spanish manual (gmpl_es.pdf) that point at their source.
@pytest.mark.parametrize("question", ["¿Cómo se dice el texto en español?",
                                      "¿Cómo se dice la texto en escritura de registros en la tabla de salida?",
                                      "¿Qué describe este párrafo sobre las tablas?"])
def test_a_spanish_question_that_points_at_its_source_is_caught(question):
    from sling.teacher.quality import validity_problem

    assert validity_problem(question, "Una respuesta que nombra las tablas de salida.", PARAGRAPH, "es") == "points_at_source"
    assert validity_problem("¿Qué escribe la sentencia table en la tabla de salida?", "Un registro por cada par.",
                            PARAGRAPH, "es") is None


def test_the_filters_count_each_validity_drop_by_reason():
    from sling.teacher.quality import filter_rows

    rows = [{"doc_id": "d", "paragraph": PARAGRAPH, "question": q, "answer": a} for q, a, _ in INVALID] + [
        {"doc_id": "d", "paragraph": PARAGRAPH + " " + a, "question": q, "answer": a} for q, a in VALID[:1]]
    kept, dropped, _ = filter_rows(cfg("dataset.min_grounding=0").dataset, rows, percentile=0)
    assert [r["question"] for r in kept] == [VALID[0][0]]
    assert {k: dropped[k] for k in ("not_a_question", "points_at_source", "reference_repeats_question",
                                    "question_copies_paragraph")} == {"not_a_question": 3, "points_at_source": 3,
                                                                      "reference_repeats_question": 3,
                                                                      "question_copies_paragraph": 1}
    kept, _, _ = filter_rows(cfg("dataset.min_grounding=0", "dataset.drop_invalid_questions=false").dataset, rows, 0)
    assert len(kept) > 1  # switched off, the same rows pass


def test_the_critics_rating_parses_or_is_none():
    from sling.data.benchmark import parse_rating

    assert parse_rating("clarity: 4\nanswerable: 5\nfaithful: 3") == {"clarity": 4, "answerable": 5, "faithful": 3}
    assert parse_rating("**Clarity**: 2\n**Answerable** - 4\n**Faithful**: 5") == {"clarity": 2, "answerable": 4,
                                                                                     "faithful": 5}
    assert parse_rating("clarity: 4\nanswerable: 5") is None  # one rating missing
    assert parse_rating("clarity: 10\nanswerable: 5\nfaithful: 5") is None  # off the scale
    assert parse_rating("I think the question is fine.") is None
    assert parse_rating("") is None


def test_the_critic_drops_low_scores_and_unparsable_replies_through_a_real_server(tmp_path, monkeypatch):
    """llm-katan's echo backend repeats the prompt, so the critic prompt set here decides its reply: each paragraph
    starts with the faithfulness rating the critic will give (or none), the other two ratings are 5."""
    from bench.bench_synthesis import katan_server
    from sling.data.benchmark import write_questions

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-local")
    marks = ["5", "2", "4", "x", "1", "3"]
    texts = [f"{m} The survey measured item {t} over four seasons and found it stable." for m, t in
             zip(marks, ["tides", "bread", "glaciers", "violins", "bees", "clocks"])]
    paragraphs = paragraphs_of("held.pdf", texts) + paragraphs_of("train.pdf", ["Training text on other matters."])
    bench = [{"doc_id": "id-held.pdf", "document": "held.pdf"}]
    with katan_server(tmp_path / "server", "--max-concurrent", "4") as server:
        c = cfg("teacher=openai", f"teacher.base_url={server.base_url}", "teacher.model=echo",
                "benchmark.questions_per_document=6", "benchmark.max_rounds=1", "benchmark.min_paragraph_chars=10",
                "dataset.near_duplicate_cosine=0.9999", "dataset.min_grounding=0", "dataset.drop_invalid_questions=false",
                "benchmark.critic.min_score=3", "benchmark.critic.prompt='clarity: 5 answerable: 5 faithful: {paragraph}'",
                *ONE_GREEDY)
        sections = c.benchmark, c.teacher, c.model, c.dataset, c.rag, c.eval, c.seed, c.cache_dir
        rows, stats = write_questions(*sections, bench, paragraphs)
        again, stats2 = write_questions(*sections, bench, paragraphs)
    assert sorted(r["paragraph"][0] for r in rows) == ["3", "4", "5"]
    assert all(r["critic"]["faithful"] == int(r["paragraph"][0]) for r in rows)
    assert stats["dropped"]["critic_low_score"] == 2 and stats["dropped"]["critic_unparsed"] == 1
    assert stats["critic"] == {"enabled": True, "min_score": 3, "scores": {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1,
                                                                           "unparsed": 1}}
    assert [f["filter"] for f in stats["funnel"]][-4:] == ["critic_low_score", "critic_unparsed", "per_paragraph",
                                                           "target"]
    assert stats["funnel"][-1]["after"] == 3
    assert again == rows and stats2["calls"] == 0  # every teacher call, the critic's too, came from the cache


def test_the_critic_runs_on_the_embedded_teacher(tmp_path, monkeypatch, base_dir):
    """The packaged SmolLM2 as critic: every candidate ends rated or counted as unparsable, never a crash."""
    from sling.config import resolve_path
    from sling.data.benchmark import criticise
    from sling.teacher.client import CachedCalls, make_teacher

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models/base").symlink_to(base_dir, target_is_directory=True)
    c = cfg("benchmark.critic.enabled=true", "teacher.max_new_tokens=24", f"cache_dir={tmp_path / 'cache'}")
    rows = [{"paragraph": PARAGRAPH, "question": q, "answer": a} for q, a in VALID[:2]] + [
        {"paragraph": PARAGRAPH, "question": INVALID[0][0], "answer": INVALID[0][1]}]
    teacher = make_teacher(c.teacher, c.model)
    kept, dropped, scores = criticise(c.benchmark, CachedCalls(c.cache_dir, teacher, "critic-test"), rows, "")
    assert len(kept) + dropped["critic_low_score"] + dropped["critic_unparsed"] == 3
    assert sum(scores.values()) == 3 and set(scores) <= {"1", "2", "3", "4", "5", "unparsed"}
    assert all(set(r["critic"]) == {"clarity", "answerable", "faithful"} for r in kept)
    assert resolve_path(c.cache_dir).exists()


def test_the_error_for_no_question_names_the_fix_that_fits_the_drops():
    """Real counts: on debian-reference's German appendix the embedded teacher wrote 44 candidates, 43 of them German
    statements instead of questions; no looser filter or larger target helps, a stronger teacher does. Candidates
    lost mostly to grounding get the looser-filter advice."""
    from sling.data.benchmark import no_questions_message

    docs = [{"document": "debian-reference-apa.de.html", "language": "de"}]
    german = no_questions_message({"generated": 44, "teacher": "embedded:SmolLM2-135M-Instruct",
                                   "dropped": {"wrong_language": 1, "not_a_question": 43, "off_topic_question": 0}},
                                  docs)
    assert "44 candidates; dropped: wrong_language 1, not_a_question 43)" in german
    assert "language (de)" in german and "teacher=openai" in german and "min_grounding" not in german
    grounded = no_questions_message({"generated": 10, "dropped": {"ungrounded_answer": 8, "not_a_question": 2}}, docs)
    assert "dataset.min_grounding" in grounded and "language (de)" not in grounded
