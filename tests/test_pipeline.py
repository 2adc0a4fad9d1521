"""Integration: the real DVC pipeline on a user's own folder of documents (`data=documents`), tiny settings.

The test builds the folder itself, outside the repository as a user's would be: Markdown, HTML and text files and
a PDF it renders with fpdf2, and no question file. Runs in a copy of the working tree (a fresh git repository in
a temporary folder), so nothing here touches the developer's outputs. Covers: `dvc repro` runs every stage; the
benchmark is held out by document and built from the documents (questions with their source paragraphs and
oracle references); no benchmark document reaches the training set; the leakage check is written; every task is
answered by every variant, scored, and named in the report; a second `dvc repro` has nothing to do; MLflow holds
one run per stage with no secret; `dvc exp run -S lora.r=8` re-runs training and what follows but nothing upstream,
and a change to the benchmark side alone re-runs neither synthesis nor training; `dvc push` to a local-directory
remote, a fresh clone and `dvc pull` bring back the adapters and data. The runs are module-scoped fixtures (`repo`, then
`reproduced`, then `seeded`), built by the first test that needs each, so every test passes alone as in the module.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sling.teacher.quality import validity_problem
from tests.conftest import ROOT, venv_env

pytestmark = [pytest.mark.integration]

STAGES = ["snapshot_model", "ingest", "benchmark", "synthesize", "build_dataset", "leakage", "general_data",
          "train_general", "train_domain", "index", "reference", "answer", "score", "rescore_paper", "report"]
SAMPLE = ROOT / "corpus" / "sample"


def sh(cmd: str, cwd: Path, env: dict | None = None, check: bool = True,
       timeout: int = 1800) -> subprocess.CompletedProcess:
    """`cmd` in a shell whose PATH leads to the venv; `timeout` guards against a hang (one pipeline run fits in it)."""
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=venv_env(env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_tree(dst: Path) -> None:
    """The files git would carry: tracked and untracked-not-ignored, as a clone of this state would have."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)


def materialise_inputs(repo: Path) -> None:
    """What scripts/install.sh does on a fresh clone: data.dvc from the bundled remote, models.dvc rebuilt and verified."""
    sh(f"dvc pull -q -r sample data.dvc && {sys.executable} -m sling.commands pretrained model=smollm2", repo)


def build_documents(folder: Path) -> None:
    """Four documents of four kinds, none with a question file."""
    folder.mkdir(parents=True)
    docs = SAMPLE / "documents"
    shutil.copy(docs / "lora.md", folder / "lora.md")
    shutil.copy(docs / "rag.html", folder / "retrieval.html")
    shutil.copy(docs / "qlora.txt", folder / "qlora.txt")
    sh(f"{sys.executable} scripts/make_sample_pdf.py {docs / 'evaluation.md'} {folder / 'evaluation.pdf'} "
       "--header 'Notes on evaluation'", ROOT)  # a real PDF rendered from the Markdown


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    repo = work / "repo"
    repo.mkdir()
    copy_tree(repo)
    # the plots page's template, written by scripts/install.sh and kept out of git (.dvc/config names it)
    if (ROOT / ".dvc/plots_page.html").exists():
        shutil.copy(ROOT / ".dvc/plots_page.html", repo / ".dvc/plots_page.html")
    # The shipped dvc.lock records the default profile; this copy runs the documents profile from scratch.
    (repo / "dvc.lock").unlink(missing_ok=True)
    build_documents(work / "papers")
    overrides = ["experiment=smoke", "data=documents", f"data.corpus_dir={work / 'papers'}",
                 "data.split.benchmark_fraction=0.5", "benchmark.questions_per_document=3",
                 # data=documents answers the joint and multi-hop tasks only; the per-document ones are tested here
                 "benchmark.per_document_tasks=true"]
    db = work / "mlflow.db"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}", "OPENAI_API_KEY": "sk-test-secret-must-not-leak"}
    sh("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base", repo)
    materialise_inputs(repo)
    sh(f"{sys.executable} -m pipeline.compose {' '.join(overrides)}", repo)
    sh(f"dvc remote add -f -d --local local {work / 'remote'}", repo)
    return {"path": repo, "work": work, "env": env, "db": db, "overrides": overrides}


@pytest.fixture(scope="module")
def reproduced(repo):
    """The module's copy after one `dvc repro` of the documents profile: every test that reads the pipeline's outputs
    asks for it, so each passes alone (`pytest tests/test_pipeline.py::<test>`, `-m slow`) as it does in the module,
    and the first of them in a session pays for the run."""
    return {**repo, "repro": sh("dvc repro", repo["path"], repo["env"])}


def given_overrides(repo: dict) -> str:
    """The profile's settings as `dvc exp run -S` flags, but the questions per document (the experiments move it)."""
    return " ".join(f"-S '{o}'" for o in repo["overrides"] if "questions_per_document" not in o)


SEEDED = "-S benchmark.questions_per_document=2 -S 'train.extra_seeds=[7]'"


@pytest.fixture(scope="module")
def seeded(reproduced):
    """One `dvc exp run` on top of that run (its results stay in the workspace): a benchmark-side change, two questions
    per document instead of three, and one extra training seed, 7."""
    out = sh(f"dvc exp run {given_overrides(reproduced)} {SEEDED}", reproduced["path"], reproduced["env"])
    return {**reproduced, "exp": out}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_repro_runs_every_stage_and_writes_metrics_and_plots(reproduced):
    r, out = reproduced["path"], reproduced["repro"]
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out.stdout, stage
    for f in ["ingest", "benchmark", "synthesize", "dataset", "leakage", "general_data", "train_general", "train_domain",
              "index", "answer", "scores", "report"]:
        data = json.loads((r / f"metrics/{f}.json").read_text())
        assert data, f
    assert (r / "models/adapters/general/adapter_model.safetensors").exists()
    assert (r / "models/adapters/domain/adapter_config.json").exists()
    assert (r / "reports/report.html").stat().st_size > 10_000
    curve = (r / "plots/loss/general/train.csv").read_text().splitlines()
    assert curve[0] == "step,loss" and len(curve) >= 3
    # DVC's metrics are the headline alone (metrics/report.json), small enough for `dvc exp show` in a terminal
    shown = json.loads(sh("dvc metrics show --json", r).stdout)
    (files,) = [entry["data"] for entry in shown.values()]
    assert list(files) == ["metrics/report.json"]
    headline = files["metrics/report.json"]["data"]

    def numbers(node) -> int:
        return sum(numbers(v) for v in node.values()) if isinstance(node, dict) else isinstance(node, (int, float))

    tasks = json.loads((r / "data/benchmark/tasks.json").read_text())["tasks"]
    assert numbers(headline) <= 20 * len(tasks) + 8
    # eval loss only where the adapter had eval rows (the smoke documents run may leave the domain side none)
    assert set(headline["adapters"]) == {"general", "domain"} and "train_loss" in headline["adapters"]["domain"]
    assert "eval_loss" in headline["adapters"]["general"]
    assert "leaked_questions" in headline
    for name in tasks:
        assert headline[name]["questions"] and "recall_at_3" in headline[name]
        assert set(headline[name]["domain"]) == {"rescaled", "token_f1_rescaled", "grounding"}
        assert set(headline[name]["domain-base"]) == {"mean", "low", "high"}
    sh("dvc plots show -o plots_html", r)
    assert (r / "plots_html/index.html").exists()


def test_benchmark_is_held_out_and_built_from_the_documents(reproduced):
    r = reproduced["path"]
    split = json.loads((r / "data/split/documents.json").read_text())
    held, trained = set(split["benchmark"].values()), set(split["train"].values())
    assert len(held) == 2 and len(trained) == 2 and not held & trained
    assert held | trained == {"lora.md", "retrieval.html", "qlora.txt", "evaluation.pdf"}
    # No benchmark document's paragraphs reach the synthetic or the training set.
    synthetic = read_jsonl(r / "data/synthetic/qa.jsonl")
    training = read_jsonl(r / "data/datasets/domain/train.jsonl") + read_jsonl(r / "data/datasets/domain/eval.jsonl")
    assert synthetic and training
    assert not {row["document"] for row in synthetic + training} & held
    tasks = json.loads((r / "data/benchmark/tasks.json").read_text())["tasks"]
    # one task per benchmark document that kept a question (the tiny teacher may leave one with none), one over both,
    # and the multi-hop task where a question over two paragraphs passed the hop check
    assert "all" in tasks and 2 <= len(tasks) <= 4 and set(tasks) - {"all", "multihop"}
    assert sorted(Path(d).name for d in tasks["all"]["documents"]) == sorted(held)
    paragraphs = {p["paragraph_hash"]: p for p in read_jsonl(r / "data/ingested/paragraphs.jsonl")}
    for name, task in tasks.items():
        questions = read_jsonl(r / task["questions"])
        assert questions, name
        for q in questions:
            assert q["question"].strip() and q["reference"].strip() and q["document"] in held
            assert q["reference_source"].startswith(("oracle:embedded:", "extractive:"))
            assert paragraphs[q["paragraph_hash"]]["text"] == q["text"]  # the source paragraph, as ingested
            assert re.fullmatch(r"[a-z0-9-]+-\d\d", q["id"])
            # what the validity checks promise of every kept question: a real question naming its subject, with a
            # reference that does not repeat it
            source = "\n\n".join(h["text"] for h in q["hops"]) if q.get("hops") else q["text"]
            assert q["question"].endswith("?") and validity_problem(q["question"], q["reference"], source) is None
            assert (name == "multihop") == bool(q.get("hops"))
            for h in q.get("hops", []):  # both paragraphs of a multi-hop question are the held-out documents' own
                assert paragraphs[h["paragraph_hash"]]["text"] == h["text"] and h["document"] in held
    card = json.loads((r / "metrics/benchmark.json").read_text())
    assert card["funnel"][0]["before"] == card["generated"] and card["funnel"][-1]["after"] == card["kept"]
    assert {f["filter"] for f in card["funnel"]} >= {"not_a_question", "points_at_source", "ungrounded_answer"}
    assert set(card["card_samples"]) == set(tasks) and all(card["card_samples"].values())
    leakage = json.loads((r / "metrics/leakage.json").read_text())
    assert leakage["paragraph_overlap"] == 0 and leakage["shared_documents"] == []
    hop_questions = len(read_jsonl(r / tasks["multihop"]["questions"])) if "multihop" in tasks else 0
    assert leakage["benchmark_questions"] == len(read_jsonl(r / tasks["all"]["questions"])) + hop_questions
    assert set(card["question_types"]) == {"factoid", "definition", "how_why", "comparison"}
    assert card["multihop"]["candidates"] >= card["multihop"]["kept"] == hop_questions


def test_every_task_is_answered_by_every_variant_scored_and_reported(reproduced):
    r = reproduced["path"]
    tasks = json.loads((r / "data/benchmark/tasks.json").read_text())["tasks"]
    scores = json.loads((r / "metrics/scores.json").read_text())
    assert set(scores) == set(tasks)
    report = (r / "reports/report.html").read_text()
    for name, task in tasks.items():
        n = len(read_jsonl(r / task["questions"]))
        for variant in ("base", "general", "domain"):
            assert len(read_jsonl(r / f"results/students/{variant}_{name}.jsonl")) == n, (variant, name)
            assert len(read_jsonl(r / f"results/students/closed_book/{variant}_{name}.jsonl")) == n, (variant, name)
            assert scores[name]["variants"][variant]["rescaled_ci"]
            assert scores[name]["retrieval_gain"][variant]["rescaled"]["ci"]
        # a handful of questions: the verdict is withheld and says how many would tell
        assert not scores[name]["power"]["verdict_allowed"]
        assert scores[name]["references"]["source"].startswith(("oracle:embedded:", "extractive:"))
        assert f"Per question: {name}" in report
    assert "Leakage between the training set and the benchmark" in report
    assert "<h2>Headline</h2>" in report and "Tuned variant minus base" in report  # computed headline, forest plot
    assert "not supported by the retrieved chunks (hallucination)" in report
    assert "Benchmark card" in report and "Too few questions to tell" in report and "beats the base" not in report
    assert "What retrieval adds" in report


def test_second_repro_has_nothing_to_do(reproduced):
    out = sh("dvc repro", reproduced["path"], reproduced["env"])
    assert "Running stage" not in out.stdout
    assert "up to date" in out.stdout.lower()


def test_mlflow_has_one_parent_with_every_stage_nested_datasets_and_no_secret(reproduced):
    import mlflow

    repo = reproduced
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo['db']}")
    exp = client.get_experiment_by_name("sling")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs
    runs = client.search_runs([exp.experiment_id], max_results=200)
    (parent,) = [run for run in runs if run.data.tags.get("sling.kind") == "pipeline"]
    stages = [run for run in runs if run is not parent]
    assert sorted(run.data.tags["sling.stage"] for run in stages) == sorted(
        ["snapshot_model", "ingest", "benchmark", "synthesize", "build_dataset", "leakage", "general_data",
         "train_general", "train_domain", "index", "answer_reference", "answer_students", "score", "rescore_paper",
         "report"])
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in stages)
    assert parent.info.status == "FINISHED" and parent.data.params["data.name"] == "documents"
    assert "lora.r" not in parent.data.params  # only what differs from the defaults
    assert "all.domain.rescaled" in parent.data.metrics and "domain.train_loss" in parent.data.metrics
    datasets = {i.dataset.name for run in stages for i in run.inputs.dataset_inputs}
    assert {"synthetic-qa", "domain-train", "general-train", "benchmark-all"} <= datasets
    for run in stages:
        assert run.data.tags["dvc.exp_name"]
        assert "sk-test-secret-must-not-leak" not in json.dumps(run.data.params)
    assert b"sk-test-secret-must-not-leak" not in repo["db"].read_bytes()
    train = [run for run in stages if run.data.tags["sling.stage"] == "train_general"][0]
    assert train.data.params["lora.r"] == "16" and "general.final.train_loss" in train.data.metrics
    history = client.get_metric_history(train.info.run_id, "general.loss")
    assert len(history) >= 2 and history[0].step < history[-1].step


def test_push_clone_pull_round_trip(reproduced):
    r, work = reproduced["path"], reproduced["work"]
    sh("git add -A && git -c user.name=t -c user.email=t@t commit -qm smoke-run", r)  # dvc.lock and metrics
    sh("dvc push", r)
    clone = work / "clone"
    sh(f"git clone -q {r} {clone}", work)
    sh(f"dvc remote add -f -d --local local {work / 'remote'}", clone)
    sh("dvc pull", clone)
    for f in ["models/adapters/general/adapter_model.safetensors", "models/adapters/domain/adapter_model.safetensors",
              "data/datasets/domain/train.jsonl", "data/ingested/paragraphs.jsonl", "models/base/model.safetensors",
              "data/benchmark/tasks.json", "corpus/sample/general.jsonl", "corpus/sample/documents/lora.md",
              "models/pretrained/SmolLM2-135M-Instruct.Q4_1.gguf"]:  # stage outputs, then data.dvc and models.dvc
        assert (clone / f).exists(), f
    assert (clone / "data/datasets/domain/train.jsonl").read_bytes() == (r / "data/datasets/domain/train.jsonl").read_bytes()
    assert (clone / "models/pretrained/SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes() == \
        (r / "models/pretrained/SmolLM2-135M-Instruct.Q4_1.gguf").read_bytes()
    status = sh("dvc status", clone).stdout
    assert "changed" not in status and "deleted" not in status and "up to date" in status


@pytest.mark.slow  # one more pipeline run (about 4.5 minutes) after the module's repro, which the default suite keeps
def test_a_benchmark_side_change_and_an_extra_seed_rerun_only_what_they_change(seeded):
    """One `dvc exp run` moves two things at once (two runs of the pipeline would cost the suite minutes): the number of
    questions per document, a benchmark-side setting, re-runs neither synthesis nor training; one more training seed
    (`train.extra_seeds`, one DVC stage per adapter and seed) trains only that seed's adapters, every tuned variant
    answers with them too, and the score pools the seeds (intervals over seeds, then questions)."""
    repo = seeded
    r, out = repo["path"], repo["exp"]
    ran = re.findall(r"Running stage '([^']+)'", out.stdout)
    assert {"benchmark", "train_general_seed@7", "train_domain_seed@7", "reference", "answer", "score"} <= set(ran), ran
    assert not {"ingest", "synthesize", "build_dataset", "general_data", "train_general", "train_domain",
                "index"} & set(ran), ran
    assert (r / "models/adapters/seeds/7/domain/adapter_config.json").exists()
    assert json.loads((r / "metrics/seeds/7/train_domain.json").read_text())["steps"] == 2
    scores = json.loads((r / "metrics/scores.json").read_text())
    for name, s in scores.items():
        assert (r / f"results/students/domain-seed7_{name}.jsonl").exists()
        assert set(s["variants"]["domain"]["per_seed"]) == {"42", "7"} and "per_seed" not in s["variants"]["base"]
        assert len(s["paired"]["domain-base"]["rescaled"]["per_seed"]) == 2
    assert "2 training seeds" in (r / "reports/report.html").read_text()
    import mlflow  # each `dvc exp run` is a pipeline run of its own in MLflow, named by its experiment

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo['db']}")
    exp = client.get_experiment_by_name("sling")
    parents = [run for run in client.search_runs([exp.experiment_id], max_results=300)
               if run.data.tags.get("sling.kind") == "pipeline"]
    # the first repro and this run, and one per other experiment when the slow tests run too: each named apart
    assert len(parents) >= 2 and len({p.info.run_name for p in parents}) == len(parents)


@pytest.mark.slow  # one more pipeline run after the seeded experiment
def test_exp_run_reruns_training_and_downstream_only(seeded):
    r = seeded["path"]  # the seeded experiment's settings again, so only lora.r differs from the workspace's
    out = sh(f"dvc exp run {given_overrides(seeded)} {SEEDED} -S lora.r=8", r, seeded["env"])
    ran = [s for s in STAGES if f"Running stage '{s}'" in out.stdout]
    assert ran[:2] == ["train_general", "train_domain"], ran
    assert not {"snapshot_model", "ingest", "benchmark", "synthesize", "build_dataset", "leakage", "general_data", "index",
                "reference", "rescore_paper"} & set(ran)
    shown = json.loads(sh("dvc exp show --json", r).stdout)
    assert "lora" in json.dumps(shown) and '"r": 8' in json.dumps(shown)


@pytest.mark.slow  # two more pipeline runs through DVC's queue workers
def test_a_queued_two_point_sweep_gives_two_more_parent_runs(repo):
    import time

    import mlflow

    r = repo["path"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo['db']}")

    def parents() -> list:  # newest first; none before the first run (this test may run alone: -m slow)
        exp = client.get_experiment_by_name("sling")
        return [] if exp is None else [run for run in client.search_runs([exp.experiment_id], max_results=500)
                                       if run.data.tags.get("sling.kind") == "pipeline"]

    before = len(parents())
    given = " ".join(f"-S '{o}'" for o in repo["overrides"])
    sh(f"dvc exp run --queue {given} -S 'lora.r=4,12'", r, repo["env"])
    sh("dvc queue start", r, repo["env"])
    deadline = time.monotonic() + 1500
    while "Queued" in (status := sh("dvc queue status", r).stdout) or "Running" in status:
        assert time.monotonic() < deadline, status
        time.sleep(10)
    assert status.count("Success") >= 2, status
    new = parents()[: len(parents()) - before]
    assert len(new) == 2 and all(p.info.status == "FINISHED" for p in new)
    assert sorted(p.data.params["lora.r"] for p in new) == ["12", "4"]
