"""Each score on hand-made cases: the ceiling (reference as answer) > a model's answer > the floor
(a shuffled reference, an empty answer); intervals, paired differences, source matching, and the
rescoring of the paper's own answer files (hand-made files in the paper's format, and the real ones
when ../shared/seed is present). Embeddings are the packaged MiniLM.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sling.scoring.metrics import (
    check_references,
    despaced_overlap,
    grounding,
    paired_differences,
    reference_problem,
    rouge_l,
    score_answers,
    score_controls,
    shuffled,
    source_rank,
    summarise,
    token_f1,
)
from sling.scoring.stats import bootstrap_ci
from sling.text import support

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed"  # the paper's files, beside the repository

REFERENCES = [
    "LoRA freezes the pretrained weights and trains two small low-rank matrices added to each attention projection.",
    "Qdrant stores embedding vectors and answers nearest-neighbour queries by cosine distance.",
    "A sourdough starter is fed with flour and water every day and used once it has doubled.",
    "The bootstrap resamples the questions with replacement to put an interval around the mean score.",
]
# A plausible small model: on topic, partly right, worded differently.
MODEL = [
    "LoRA keeps the pretrained weights frozen and learns small matrices for the attention layers.",
    "Qdrant is a database that keeps vectors and finds the nearest ones.",
    "You feed a sourdough starter flour and water, then bake with it.",
    "Bootstrapping resamples questions to get an interval for the mean.",
]
CHUNKS = [[r] for r in REFERENCES]


@pytest.fixture(scope="module")
def cfg():
    from sling.config import compose

    return compose(["eval.bootstrap=500"])


def test_every_metric_ranks_ceiling_above_model_above_floor(cfg):
    model = score_answers(MODEL, REFERENCES, CHUNKS, cfg.eval)
    controls = score_controls(REFERENCES, CHUNKS, cfg.eval, cfg.seed, None)
    ceiling, floor, empty = controls["reference_as_answer"], controls["shuffled_reference"], controls["empty_answer"]
    for metric in ("cosine", "rescaled", "token_f1", "rouge_l"):
        m = float(model[metric].mean())
        assert ceiling[metric] > m > floor[metric], metric
        assert m > empty[metric], metric
    assert ceiling["cosine"] == pytest.approx(1.0, abs=1e-4) and ceiling["token_f1"] == 1.0
    assert empty["cosine"] == 0.0 and empty["token_f1"] == 0.0 and empty["discriminated"] == 0.0
    assert ceiling["discriminated"] == 1.0 and float(model["discriminated"].mean()) == 1.0
    assert floor["discriminated"] == 0.0
    # The raw cosine of on-topic but mismatched answers is far from 0: the baseline is what makes it readable.
    assert 0 < model["baseline"][0] < float(model["cosine"].mean())


def test_token_f1_and_rouge_on_known_strings():
    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("cat dog", "cat bird") == pytest.approx(0.5)
    assert token_f1("", "cat") == 0.0 and token_f1("fish", "cat") == 0.0
    assert rouge_l("a b c d", "a b c d") == 1.0 and 0 < rouge_l("a x c d", "a b c d") < 1 and rouge_l("", "a") == 0.0


def test_grounding_counts_supported_sentences():
    chunks = ["LoRA trains two low-rank matrices. The base weights stay frozen."]
    assert grounding("LoRA trains low-rank matrices. The weights stay frozen.", chunks, 0.5) == 1.0
    assert grounding("LoRA trains low-rank matrices. Paris is the capital of France.", chunks, 0.5) == 0.5
    assert grounding("Paris is the capital of France.", chunks, 0.5) == 0.0
    assert grounding("", chunks, 0.5) == 0.0


def test_source_rank_finds_the_paragraph_even_without_spaces():
    source = "The rank of the adapter decides how many parameters are trained."
    retrieved = [{"text": "Qdrant stores vectors."}, {"text": "Intro. " + source + " More text."}]
    assert source_rank(source, retrieved) == 2
    assert source_rank(source, retrieved[:1]) is None and source_rank("", retrieved) is None
    mangled = "Therank oftheadapte rdecide showmany parameter sare trained."  # as the paper's extraction left it
    assert despaced_overlap(mangled, source) == 1.0 and source_rank(mangled, retrieved) == 2
    assert despaced_overlap(mangled, "Qdrant stores vectors.") == 0.0
    # a source paragraph longer than a chunk: the chunk cut from its middle is a hit, a chunk from elsewhere is not
    words = ("glacier harbor meadow canyon orchard tundra lagoon summit prairie delta volcano reef marsh fjord "
             "savanna dune estuary plateau ravine geyser atoll steppe moor butte cove bayou mesa grotto isthmus "
             "archipelago bluff cape crater gulch heath knoll").split()
    long = " ".join(f"The {a} borders the {b} at mile {i}." for i, (a, b) in enumerate(zip(words[::2], words[1::2])))
    middle = {"text": long[len(long) // 3:len(long) // 3 + 200]}
    assert support(long, middle["text"]) < 0.6  # it holds a small part of the source only
    assert source_rank(long, [{"text": "Qdrant stores vectors in collections, each with its own distance."},
                              middle]) == 2
    assert source_rank(long, [{"text": "Sentence 3 of another paragraph, on vector stores and their indexes."}]) is None


def test_shuffle_is_a_derangement_and_intervals_hold_the_mean():
    items = list(range(11))
    out = shuffled(items, seed=3)
    assert sorted(out) == items and all(a != b for a, b in zip(items, out))
    values = np.random.default_rng(0).normal(0.5, 0.1, 25)
    lo, hi = bootstrap_ci(values, 1000, 0.95, 0)
    assert lo < values.mean() < hi and hi - lo < 0.2


def test_paired_differences_have_the_sign_of_the_better_variant(cfg):
    good = score_answers(MODEL, REFERENCES, CHUNKS, cfg.eval)
    bad = score_answers(shuffled(MODEL, 1), REFERENCES, CHUNKS, cfg.eval)
    diff = paired_differences({"bad": bad, "good": good}, cfg.eval, cfg.seed)["good-bad"]
    for metric in ("cosine", "rescaled", "token_f1"):
        assert diff[metric]["mean"] > 0 and diff[metric]["ci"][0] > 0, metric


def write_paper_files(root, answers: dict[str, list[str]]) -> None:
    """The paper's file shapes: `;`-separated benchmark data, comma-separated results with multi-line cells."""
    bench = root / "bench" / "single_paper"
    bench.mkdir(parents=True)
    with open(bench / "single_paper_data.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["page", "para_num", "text", "pdf_name", "question", "answer", "text_synthetic", "gpt_response"])
        for i, ref in enumerate(REFERENCES):
            w.writerow([1, i, ref.replace(" ", "", 3), "doc", f"Question {i}?", "", "", ref])
    (root / "results").mkdir()
    for model, texts in answers.items():
        with open(root / "results" / f"single_paper_results_{model}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["", "question", "gpt_response", "model_response", "context_chunk_1", "context_chunk_2",
                        "context_chunk_3", "inference_speed_seconds", "cosine_similarity"])
            for i, text in enumerate(texts):
                w.writerow([i, f"Question {i}?", REFERENCES[i], "\r\n  " + text, REFERENCES[i], "other\r\ntext", "x",
                            70 + i, 0.9 + i / 100])


def test_rescore_paper_scores_the_paper_files(tmp_path, monkeypatch):
    from pipeline.benchmark import main as benchmark
    from pipeline.rescore_paper import main

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    write_paper_files(tmp_path, {"good": MODEL, "wrong": shuffled(MODEL, 1)})
    (tmp_path / "doc.md").write_text("# A document\n\n" + " ".join(REFERENCES) + "\n")
    questions = tmp_path / "bench" / "single_paper" / "single_paper_data.csv"
    task = f"data.tasks={{single:{{documents:'{tmp_path / 'doc.md'}',questions:'{questions}'}}}}"
    benchmark([task, "~data.tasks.joint"])  # normalises the questions: the gpt_response column becomes the reference
    main([f"data.published.dir={tmp_path / 'results'}", "data.published.models=[good,wrong]",
          "+data.published.files.single=single_paper", "eval.bootstrap=200", task, "~data.tasks.joint"])

    out = json.loads((tmp_path / "metrics/paper_rescored.json").read_text())["single"]
    good, wrong = out["models"]["good"], out["models"]["wrong"]
    assert out["questions"] == 4
    assert good["paper_cosine"] == pytest.approx(np.mean([0.9, 0.91, 0.92, 0.93]), abs=1e-4)
    assert good["latency_s"] == 71.5
    assert good["rescaled"] > wrong["rescaled"] and good["token_f1"] > wrong["token_f1"]
    assert good["retrieval"]["recall_at_3"] == 1.0  # the source paragraph (spaces lost) is context_chunk_1
    assert out["controls"]["reference_as_answer"]["token_f1"] == 1.0
    assert out["paired"]["wrong-good"]["rescaled"]["mean"] < 0


def test_rescore_paper_records_that_the_sample_has_nothing_published(tmp_path, monkeypatch, caplog):
    from pipeline.rescore_paper import main

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    with caplog.at_level("INFO"):
        main(["data.published.dir=."])
    assert json.loads((tmp_path / "metrics/paper_rescored.json").read_text()) == {}
    assert "no published answers to rescore" in caplog.text


def test_rescore_paper_names_a_task_the_benchmark_lacks(tmp_path, monkeypatch):
    from pipeline.rescore_paper import main

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    (tmp_path / "data/benchmark").mkdir(parents=True)
    (tmp_path / "data/benchmark/tasks.json").write_text(json.dumps({"tasks": {"single": {}, "joint": {}}}))
    with pytest.raises(ValueError, match=r"data.published.files names tasks \['triple'\]"):
        main(["data.published.dir=.", "data.published.models=[m]", "+data.published.files.triple=triple_paper"])


def test_rescore_paper_names_a_missing_column(tmp_path, monkeypatch):
    from sling.scoring.published import read_results

    path = tmp_path / "x_results_m.csv"
    path.write_text("question,model_response\nq,a\n")
    with pytest.raises(ValueError, match="missing columns .*context_chunk_1"):
        read_results(path)


@pytest.mark.skipif(not (SEED / "paper_results").exists(), reason="the paper's files are not in ../shared/seed")
def test_rescoring_the_real_paper_files_separates_what_cosine_hides(tmp_path, monkeypatch):
    from pipeline.benchmark import main as benchmark
    from pipeline.rescore_paper import main

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    benchmark(["data=paper", f"data.seed_dir={SEED}"])
    main(["data=paper", f"data.seed_dir={SEED}", "eval.bootstrap=200"])
    out = json.loads((tmp_path / "metrics/paper_rescored.json").read_text())
    assert (out["single"]["questions"], out["joint"]["questions"]) == (11, 25)
    for task in ("single", "joint"):
        with open(SEED / "paper_results" / f"{task}_paper_results_phi-1_5.csv", newline="", encoding="utf-8") as f:
            column = [float(r["cosine_similarity"]) for r in csv.DictReader(f)]
        m = out[task]["models"]
        assert m["phi-1_5"]["paper_cosine"] == pytest.approx(np.mean(column), abs=1e-4)
        # The paper's cosine spread is a few hundredths; token F1 of the base model is about twice the tuned ones'.
        assert m["phi-1_5"]["token_f1"] > 1.5 * max(m["phipaca"]["token_f1"], m["saiphipaca"]["token_f1"])
        assert out[task]["controls"]["shuffled_reference"]["rescaled"] < m["phipaca"]["rescaled"] < 1.0


def test_reference_checks_name_what_is_wrong():
    assert reference_problem("LoRA trains two small matrices.", 600) is None
    assert reference_problem("  ", 600) == "empty"
    assert reference_problem("The answer is 4.\n### Input: what is 2+2?\n### Response:", 600) == "template_echo"
    loop = "The model is trained on the data.\nThe model is trained on the data.\nThe model is trained on the data."
    assert reference_problem(loop, 600) == "repeated_line"
    assert reference_problem("word " * 500, 600) == "too_long" and reference_problem("word " * 500, None) is None


def test_a_degenerate_reference_is_counted_excluded_and_named(tmp_path, monkeypatch, caplog):
    """The score stage leaves a bad reference out of every variant's scores and the controls, naming its id."""
    from pipeline.score import main
    from sling.config import compose
    from sling.io import write_jsonl

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    (tmp_path / "data/benchmark").mkdir(parents=True)
    (tmp_path / "data/benchmark/tasks.json").write_text(json.dumps({"tasks": {"t1": {"documents": []}}}))
    (tmp_path / "metrics").mkdir()
    ids = [f"q{i}" for i in range(len(REFERENCES))] + ["q-loop"]
    refs = REFERENCES + ["### Instruction: answer\n### Input: answer\n### Input: answer"]
    rows = lambda answers: [{"id": i, "question": f"Question {i}?", "answer": a, "retrieved": [{"id": "c", "text": r}],  # noqa: E731
                             "latency_s": 0.1, "answer_tokens": 5, "source_text": ""} for i, a, r in zip(ids, answers, refs)]
    write_jsonl(tmp_path / "results/reference/t1.jsonl", [r | {"reference_source": "hand-written"} for r in rows(refs)])
    for variant in ("base", "general", "domain"):
        answers = REFERENCES[:2] + MODEL[2:] if variant == "domain" else MODEL  # the domain variant differs
        write_jsonl(tmp_path / f"results/students/{variant}_t1.jsonl", rows(answers + ["anything at all"]))
        # closed-book: the base model knows the first two answers by heart, the others say nothing useful
        closed = REFERENCES[:2] + ["I do not know."] * (len(REFERENCES) - 2) if variant == "base" else [""] * len(REFERENCES)
        write_jsonl(tmp_path / f"results/students/closed_book/{variant}_t1.jsonl",
                    [r | {"retrieved": []} for r in rows(closed + ["x"])])
    with caplog.at_level("WARNING"):
        main(["eval.bootstrap=100"])
    out = json.loads((tmp_path / "metrics/scores.json").read_text())["t1"]
    # the closed-book arm: scored like the RAG answers; what retrieval adds is RAG minus closed-book, paired
    assert out["easy_questions"]["ids"] == ["q0", "q1"]
    assert out["closed_book"]["domain"]["cosine"] == 0.0
    gain = out["retrieval_gain"]["domain"]["rescaled"]
    assert gain["mean"] == pytest.approx(out["variants"]["domain"]["rescaled"] - out["closed_book"]["domain"]["rescaled"],
                                         abs=2e-4)
    assert gain["ci"][0] <= gain["mean"] <= gain["ci"][1] and gain["detectable"] > 0
    # four questions: below eval.min_questions, the verdict is withheld and the count that would tell is given
    assert out["power"]["questions"] == 4 and not out["power"]["verdict_allowed"]
    assert out["power"]["questions_for_target"] > 4
    assert out["questions"] == len(REFERENCES)
    assert out["references"] == {"source": "hand-written", "checked": 5, "excluded": 1,
                                 "by_reason": {"template_echo": 1}, "excluded_ids": {"q-loop": "template_echo"}}
    assert "q-loop (template_echo)" in caplog.text
    same = score_answers(MODEL, REFERENCES, CHUNKS, compose(["eval.bootstrap=100"]).eval)
    assert out["variants"]["base"]["token_f1"] == pytest.approx(float(same["token_f1"].mean()), abs=1e-4)
    assert out["controls"]["reference_as_answer"]["token_f1"] == 1.0
    per_q = json.loads((tmp_path / "results/per_question.json").read_text())["t1"]
    assert [q["id"] for q in per_q] == ids[:-1]
    with pytest.raises(ValueError, match="every reference answer failed its check"):
        check_references([{"id": "a", "answer": ""}], compose([]).eval, "t")


def test_lexical_metrics_are_rescaled_by_their_own_shuffled_baseline_and_a_failing_floor_is_flagged(cfg):
    """References that share their vocabulary put raw token F1 of a wrong answer well above 0; rescaled, it sits at
    about 0 and a right answer above it. A model below the shuffled-reference floor makes the metric unsound."""
    from sling.scoring.metrics import soundness

    refs = [f"The adapter of model {w} is trained with LoRA at rank sixteen on the attention projections." for w in
            ("alpha", "beta", "gamma", "delta", "epsilon")]
    right = score_answers(refs, refs, [[r] for r in refs], cfg.eval)
    wrong = score_answers(shuffled(refs, 2), refs, [[r] for r in refs], cfg.eval)
    assert float(wrong["token_f1"].mean()) > 0.8  # raw F1 cannot tell these apart from right answers
    assert float(wrong["token_f1_rescaled"].mean()) < 0.05  # at or below 0: no better than another question's answer
    assert float(right["token_f1_rescaled"].mean()) == pytest.approx(1.0)
    controls = score_controls(refs, [[r] for r in refs], cfg.eval, cfg.seed, None)
    models = {"right": summarise(right, cfg.eval, cfg.seed), "wrong": summarise(wrong, cfg.eval, cfg.seed)}
    flags = soundness(models, controls)
    assert flags["token_f1"]["sound"] is False and flags["token_f1"]["at_or_below_floor"] == ["wrong"]
    assert soundness({"right": models["right"]}, controls)["token_f1_rescaled"]["sound"] is True


def test_two_level_bootstrap_is_the_question_bootstrap_for_one_seed_and_widens_with_seed_noise():
    from sling.scoring.stats import bootstrap_ci, two_level_ci

    rng = np.random.default_rng(0)
    questions = rng.normal(0.1, 0.3, size=40)
    assert two_level_ci(questions, 1000, 0.95, 1) == bootstrap_ci(questions, 1000, 0.95, 1)
    assert two_level_ci(questions[None, :], 1000, 0.95, 1) == bootstrap_ci(questions, 1000, 0.95, 1)
    # three seeds that agree give about the one-seed interval; three that disagree by as much as the effect widen it
    agree = np.vstack([questions + rng.normal(0, 0.01, size=40) for _ in range(3)])
    disagree = np.vstack([questions + shift for shift in (-0.15, 0.0, 0.15)])
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    one = width(bootstrap_ci(questions, 2000, 0.95, 1))
    assert width(two_level_ci(agree, 2000, 0.95, 1)) == pytest.approx(one, rel=0.25)
    assert width(two_level_ci(disagree, 2000, 0.95, 1)) > 1.5 * one


def test_what_a_question_count_can_detect():
    from sling.scoring.stats import (
        detectable_difference,
        questions_for,
        questions_needed,
    )

    # 0.1 at 80% power with a per-question spread of 0.4: ((1.96 + 0.84) * 0.4 / 0.1)^2 = 125.6
    assert questions_needed(0.1, 0.4, 0.95) == 126
    # an interval of half-width 0.1 detects (1.96 + 0.84) / 1.96 * 0.1
    assert detectable_difference([-0.1, 0.1], 0.95) == pytest.approx(0.143, abs=1e-3)
    assert questions_for(0.1, 0.2, 25) == 100 and questions_for(0.1, 0.05, 25) == 25


def one_task_with_answers(tmp_path, monkeypatch, answers: dict[str, list[str]]) -> None:
    """A work root with one task `t1` over REFERENCES: its hand-written references and each named answer set."""
    from sling.io import write_jsonl

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    (tmp_path / "data/benchmark").mkdir(parents=True)
    (tmp_path / "data/benchmark/tasks.json").write_text(json.dumps({"tasks": {"t1": {"documents": []}}}))
    rows = lambda answers: [{"id": f"q{i}", "question": f"Question {i}?", "answer": a, "source_text": "",  # noqa: E731
                             "retrieved": [{"id": "c", "text": r}], "latency_s": 0.1, "answer_tokens": 5}
                            for i, (a, r) in enumerate(zip(answers, REFERENCES))]
    write_jsonl(tmp_path / "results/reference/t1.jsonl", [r | {"reference_source": "hand-written"} for r in rows(REFERENCES)])
    for name, a in answers.items():
        write_jsonl(tmp_path / f"results/students/{name}_t1.jsonl", rows(a))


def test_extra_seeds_pool_into_the_scores_with_intervals_over_seeds(tmp_path, monkeypatch):
    """The score stage reads each extra seed's answers (`domain-seed7`), pools them with the run's own, reports each
    seed's mean, and pairs seed with seed; the base (no adapter) pairs with every seed."""
    from pipeline.score import main

    one_task_with_answers(tmp_path, monkeypatch, {
        "base": MODEL, "general": MODEL, "domain": REFERENCES, "general-seed7": MODEL,
        "domain-seed7": ["Nothing to do with it."] * len(REFERENCES)})
    main(["eval.bootstrap=200", "train.extra_seeds=[7]", "rag.closed_book=false"])
    out = json.loads((tmp_path / "metrics/scores.json").read_text())["t1"]
    domain = out["variants"]["domain"]
    assert set(domain["per_seed"]) == {"42", "7"} and "per_seed" not in out["variants"]["base"]
    assert domain["per_seed"]["42"]["cosine"] == pytest.approx(1.0, abs=1e-4)  # its answers are the references
    assert domain["cosine"] == pytest.approx((domain["per_seed"]["42"]["cosine"] + domain["per_seed"]["7"]["cosine"]) / 2,
                                             abs=1e-3)
    pair = out["paired"]["domain-base"]["rescaled"]
    assert len(pair["per_seed"]) == 2 and pair["per_seed"][0] > 0 > pair["per_seed"][1]  # the seeds disagree
    assert pair["ci"][0] < 0 < pair["ci"][1]  # so the pooled interval holds zero: no "beats" from one lucky seed
    # each seed alone, resampling questions only: what one training run would have claimed (the README's fate line)
    assert pair["seeds"] == [42, 7]  # named in the order of per_seed (the run's own seed first)
    lucky, unlucky = pair["per_seed_ci"]
    assert 0 < lucky[0] <= pair["per_seed"][0] <= lucky[1] and unlucky[0] <= pair["per_seed"][1] <= unlucky[1] < 0


def test_one_question_has_no_spread_so_the_count_needed_comes_from_the_prior():
    """A task left with one question has an interval of no width: it must not read as 'detects 0.00, needs 1 more'
    (a real documents run's held-out Markdown page kept one question)."""
    from sling.config import compose
    from sling.scoring.metrics import power
    from sling.scoring.report import power_line
    from sling.scoring.stats import questions_needed

    cfg = compose([])
    one = {"questions": 1, "paired": {"domain-base": {"rescaled": {"mean": -0.1, "ci": [-0.1, -0.1], "detectable": 0.0}}}}
    p = power(one, cfg.eval)
    assert p["detectable_rescaled"] is None and not p["verdict_allowed"]
    assert p["questions_for_target"] == questions_needed(0.1, cfg.eval.paired_sd, cfg.eval.ci) == 126
    said, allowed = power_line({"power": p})
    assert not allowed and "1 paired question: too few to measure" in said and "about 126 questions (125 more)" in said
    four = {"questions": 4, "paired": {"domain-base": {"rescaled": {"mean": 0.1, "ci": [-0.1, 0.3], "detectable": 0.28}}}}
    assert power(four, cfg.eval)["questions_for_target"] == 32  # 4 x (0.28 / 0.1)^2 = 31.4: from the measured spread


def test_a_variant_named_outside_the_pipeline_pools_the_seeds_eval_variant_seeds_lists(tmp_path, monkeypatch):
    """The study's recipe variants (domain_raft) are not pipeline variants: eval.variant_seeds names their seeds, and
    a listed variant pools only those, whatever train.extra_seeds says."""
    from pipeline.score import main

    one_task_with_answers(tmp_path, monkeypatch, {"base": MODEL, "domain_raft": REFERENCES,
                                                  "domain_raft-seed1": MODEL, "domain_raft-seed2": MODEL})
    main(["eval.bootstrap=200", "rag.closed_book=false", "rag.variants=[base,domain_raft]",
          "eval.variant_seeds={domain_raft:[1,2]}"])
    out = json.loads((tmp_path / "metrics/scores.json").read_text())["t1"]
    assert set(out["variants"]["domain_raft"]["per_seed"]) == {"42", "1", "2"}
    assert len(out["paired"]["domain_raft-base"]["rescaled"]["per_seed"]) == 3
    assert "per_seed" not in out["variants"]["base"]
