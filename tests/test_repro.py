"""scripts/check_repro.py run for real, in a temporary git repository holding made-up committed metrics and dvc.lock:
each headline metric identical, within the seed band or outside, the exit code, a missing file's one-line error, and
the dvc.lock check telling a stale lock from outputs that did not reproduce."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_repro.py"

SCORES = {"tasks": {"joint": {
    "variants": {
        "base": {"cosine": 0.4, "rescaled": 0.3, "token_f1": 0.1, "token_f1_rescaled": 0.01, "grounding": 0.0,
                 "latency_s": 1.5},
        "domain": {"cosine": 0.45, "rescaled": 0.37, "token_f1": 0.15, "token_f1_rescaled": 0.06, "grounding": 0.15,
                   "latency_s": 0.9,
                   "per_seed": {"1": {"cosine": 0.44, "rescaled": 0.36}, "2": {"cosine": 0.47, "rescaled": 0.38},
                                "3": {"cosine": 0.45, "rescaled": 0.37}}}},
    "paired": {"domain-base": {"cosine": {"mean": 0.05, "ci": [-0.02, 0.14]}}},
    "retrieval": {"recall_at_3": 1.0, "mrr": 0.95}}}}
TRAIN = {"train_loss": 1.8, "eval_loss": 1.6, "wall_time_s": 45.7}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def write(repo: Path, scores: dict, train: dict) -> None:
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/scores.json").write_text(json.dumps(scores, indent=2))
    (repo / "metrics/train_general.json").write_text(json.dumps(train, indent=2))


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, SCORES, TRAIN)
    git(repo, "add", "metrics")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results")
    return repo


def check(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=repo / "metrics", capture_output=True, text=True)


def verdicts(out: str) -> dict[str, str]:
    said = {}
    for line in out.splitlines():
        for v in ("identical", "within the seed band", "outside", "new"):
            if line.startswith(v + " "):
                said[line[len(v):].strip().split(":")[0]] = v
    return said


def test_an_unchanged_run_is_identical_everywhere(repo):
    done = check(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    said = verdicts(done.stdout)
    assert set(said.values()) == {"identical"}
    assert {"joint domain cosine", "joint base grounding", "joint domain-base cosine (paired mean)",
            "joint retrieval recall_at_3", "joint retrieval mrr", "general train_loss", "general eval_loss"} <= set(said)
    assert not any("latency" in name or "wall_time" in name for name in said)  # timings are no headline
    assert done.stdout.splitlines()[-1] == ("check_repro: 15 headline metrics against HEAD:metrics/: 15 identical, "
                                            "0 within the seed band, 0 outside")


def test_each_verdict_and_a_non_zero_exit_only_when_a_headline_metric_is_outside(repo):
    scores, train = copy.deepcopy(SCORES), dict(TRAIN)
    domain = scores["tasks"]["joint"]["variants"]["domain"]
    domain["cosine"] = 0.46          # inside the seeds' 0.44..0.47
    domain["rescaled"] = 0.381       # past the seeds' 0.36..0.38: outside
    domain["latency_s"] = 9.9        # a timing: not compared
    train["wall_time_s"] = 99.0
    write(repo, scores, train)
    done = check(repo)
    said = verdicts(done.stdout)
    assert said["joint domain cosine"] == "within the seed band"
    assert said["joint domain rescaled"] == "outside"
    assert said["joint base cosine"] == "identical" and said["general eval_loss"] == "identical"
    assert "joint domain rescaled: 0.381 (committed 0.37, seeds 0.36..0.38)" in done.stdout
    assert done.returncode == 1 and done.stdout.splitlines()[-1].endswith(
        "13 identical, 1 within the seed band, 1 outside")

    domain["rescaled"] = 0.36        # the band's edge is in it
    write(repo, scores, train)
    done = check(repo)
    assert done.returncode == 0 and verdicts(done.stdout)["joint domain rescaled"] == "within the seed band"

    train["eval_loss"] = 1.61        # no seeds for the adapter's loss: any change is outside
    del scores["tasks"]["joint"]["retrieval"]["mrr"]
    write(repo, scores, train)
    done = check(repo)
    said = verdicts(done.stdout)
    assert said["general eval_loss"] == "outside" and said["joint retrieval mrr"] == "outside"
    assert "joint retrieval mrr: missing from the workspace (committed 0.95)" in done.stdout
    assert done.returncode == 1


def test_seed_bands_of_paired_differences_and_of_each_seeds_training_losses(repo):
    scores = copy.deepcopy(SCORES)
    scores["tasks"]["joint"]["paired"]["domain-base"]["cosine"]["per_seed"] = [0.03, 0.05, 0.08]  # pipeline.score
    (repo / "metrics/seeds/7").mkdir(parents=True)
    (repo / "metrics/seeds/7/train_general.json").write_text(json.dumps({"train_loss": 1.9, "eval_loss": 1.7}))
    write(repo, scores, TRAIN)
    git(repo, "add", "metrics")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seeds")
    scores["tasks"]["joint"]["paired"]["domain-base"]["cosine"]["mean"] = 0.07
    write(repo, scores, dict(TRAIN, eval_loss=1.65))                      # between the two seeds' 1.6 and 1.7
    (repo / "metrics/seeds/7/train_general.json").write_text(json.dumps({"train_loss": 1.95, "eval_loss": 1.7}))
    done = check(repo)
    said = verdicts(done.stdout)
    assert said["joint domain-base cosine (paired mean)"] == "within the seed band"
    assert said["general eval_loss"] == "within the seed band" and said["general seed 7 eval_loss"] == "identical"
    assert said["general seed 7 train_loss"] == "outside"                 # past the seeds' 1.8..1.9
    assert done.returncode == 1


def test_tasks_at_the_top_level_of_scores_json_are_read_too(repo):
    write(repo, SCORES["tasks"], TRAIN)  # today's layout: {task: {...}} without a `tasks` key
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "flat")
    done = check(repo)
    assert done.returncode == 0 and "15 identical" in done.stdout


def test_a_missing_file_is_one_clear_line(repo, tmp_path):
    (repo / "metrics/scores.json").unlink()
    done = check(repo)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "check_repro: metrics/scores.json is missing from the workspace: run dvc repro first\n"
    done = check(repo, "--lock")
    assert done.returncode == 2
    assert done.stderr == "check_repro: dvc.lock is missing from the workspace: run dvc repro first\n"
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    done = check(repo, "--lock")
    assert done.returncode == 2 and done.stderr == (
        "check_repro: dvc.lock is not committed at HEAD: commit the results of a full dvc repro first\n")
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=outside, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not in a git repository" in done.stderr


LOCK = {"schema": "2.0", "stages": {
    "train": {"cmd": "python -m pipeline.train general",
              "deps": [{"path": "pipeline/train.py", "md5": "a1", "size": 10},
                       {"path": "data/datasets/general", "md5": "d1.dir", "size": 5, "nfiles": 2}],
              "params": {"params.yaml": {"train.lr": 0.0004}},
              "outs": [{"path": "metrics/train_general.json", "md5": "m1", "size": 3},
                       {"path": "models/adapters/general", "md5": "w1.dir", "size": 9, "nfiles": 3}]},
    "general_data": {"cmd": "python -m pipeline.general_data",
                     "deps": [{"path": "corpus/general.jsonl", "md5": "c1", "size": 4}],
                     "outs": [{"path": "data/datasets/general", "md5": "d1.dir", "size": 5, "nfiles": 2}]}}}


def test_the_lock_check_tells_a_stale_lock_from_outputs_that_did_not_reproduce(repo):
    (repo / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    git(repo, "add", "dvc.lock")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "lock")

    def run_with(change) -> subprocess.CompletedProcess:
        lock = copy.deepcopy(LOCK)
        change(lock["stages"])
        (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
        return check(repo, "--lock")

    # a metrics file's hash (it holds timings) differs on every run: not the lock check's business
    done = run_with(lambda s: s["train"]["outs"][0].update(md5="m2"))
    assert done.returncode == 0, done.stdout
    # the upstream stage wrote other data with the same inputs: it did not reproduce; train's own inputs matched
    # once that data is accounted for, so train is not blamed as stale
    done = run_with(lambda s: (s["general_data"]["outs"][0].update(md5="d2.dir"),
                               s["train"]["deps"][1].update(md5="d2.dir")))
    assert done.returncode == 1
    assert "not reproduced       general_data: data/datasets/general" in done.stdout
    assert "stale" not in done.stdout.split("check_repro --lock")[0]
    # code changed since the committed run: stale, with what to do
    done = run_with(lambda s: s["train"]["deps"][0].update(md5="a2"))
    assert done.returncode == 1 and "stale                train: dep pipeline/train.py" in done.stdout
    assert "re-run dvc repro and commit dvc.lock" in done.stdout
    done = run_with(lambda s: s["train"]["params"]["params.yaml"].update({"train.lr": 0.001}))
    assert done.returncode == 1 and "stale                train: params train.lr" in done.stdout
