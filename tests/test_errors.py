"""The one error contract (sling.errors, sling.cli): a user's mistake ends a stage with one line on stderr,
`error: <message>` naming the file or the config key, and exit status 1, never a traceback.

Every DVC stage (read from dvc.yaml, a foreach stage once with seed 1) is run twice through `sling.cli.run`, in this
process with sys.argv patched: with a config value of the wrong type, and on an empty work directory, where its
first input is missing. One stage runs for real as `python -m pipeline.<stage>`, for the process's own exit status
and stderr. The bad-value checks hold the contract only (one line, the key named, status 1), not the wording, which
belongs to the config's validation.
"""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


# A foreach stage's item: a training seed, or the variant an export stage exports.
ITEMS = {"export": "domain"}


def dvc_stages() -> dict[str, list[str]]:
    """Each DVC stage's command line after `python -m`: the module and its arguments (a foreach stage's item is
    ITEMS's, else 1)."""
    stages = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        cmd = stage.get("do", stage)["cmd"].replace("${item}", ITEMS.get(name, "1"))
        stages[name] = cmd.split("python -m ", 1)[1].split()
    return stages


STAGES = dvc_stages()
# Stages that need more than an empty work directory to reach a missing input: the settings that make them read one.
NEEDS = {"rescore_paper": ["data=paper"]}  # the default profile has no published answers to read


def run_stage(command: list[str], capsys) -> tuple[int, str]:
    """`python -m <command>` in this process, through sling.cli.run: its exit status and its stderr."""
    from sling.cli import run

    module = importlib.import_module(command[0])
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", [f"{command[0].replace('.', '/')}.py", *command[1:]])
        with pytest.raises(SystemExit) as stopped:
            run(module.main)
    return stopped.value.code, capsys.readouterr().err


def check_one_line(code, stderr: str, *named: str) -> str:
    """Exit status 1, no traceback, and a last line `error: ...` that names each of `named`."""
    assert code == 1, (code, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), stderr[-2000:]
    for name in named:
        assert name in last, (name, last)
    return last


def test_every_stage_is_tested():
    assert {"snapshot_model", "ingest", "benchmark", "synthesize", "build_dataset", "leakage", "general_data",
            "train_general", "train_domain", "index", "reference", "answer", "score", "rescore_paper",
            "report"} <= set(STAGES)
    for name, command in STAGES.items():
        source = (ROOT / (command[0].replace(".", "/") + ".py")).read_text(encoding="utf-8")
        assert re.search(r'if __name__ == "__main__":\n    run\(main\)\n', source), f"{name} does not go through run"
    assert 'if __name__ == "__main__":\n    run(main)' in (ROOT / "pipeline/compose.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_wrongly_typed_value_is_one_line_naming_the_key(stage, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    code, err = run_stage(STAGES[stage] + ["lora.r=abc"], capsys)
    check_one_line(code, err, "lora.r")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_missing_input_is_one_line_naming_the_file(stage, capsys, tmp_path, monkeypatch):
    work = tmp_path / "empty"
    work.mkdir()
    monkeypatch.setenv("SLING_WORKDIR", str(work))
    code, err = run_stage(STAGES[stage] + NEEDS.get(stage, []), capsys)
    check_one_line(code, err, str(work))  # the missing file, under the work directory


@pytest.mark.parametrize("override,key", [
    ("lora.nope=1", "lora.nope"),        # a key conf/ does not have
    ("model=nope", "nope"),              # a config group option that does not exist
    ("lora.r=[1", "[1"),                 # a malformed override
])
def test_an_override_hydra_cannot_apply_is_one_line(override, key, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    code, err = run_stage(["pipeline.leakage", override], capsys)
    check_one_line(code, err, key)


def test_compose_reports_a_bad_value_and_writes_nothing(capsys, tmp_path, monkeypatch):
    from pipeline import compose

    params = tmp_path / "params.yaml"
    monkeypatch.setattr(compose, "PARAMS", params)
    code, err = run_stage(["pipeline.compose", "lora.r=abc"], capsys)
    check_one_line(code, err, "lora.r")
    assert not params.exists()


@pytest.mark.parametrize("command", [["pipeline.answer"], ["pipeline.train", "everything"],
                                     ["pipeline.train", "general", "--seed", "x"]])
def test_a_wrong_command_line_is_one_line(command, capsys):
    code, err = run_stage(command, capsys)
    check_one_line(code, err, "python -m " + command[0])


def test_an_unreachable_vector_store_names_its_setting(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    code, err = run_stage(["pipeline.answer", "students", "rag.qdrant_url=http://127.0.0.1:9"], capsys)
    check_one_line(code, err, "rag.qdrant_url=http://127.0.0.1:9")


def test_an_unreachable_teacher_names_its_server(capsys, tmp_path, monkeypatch):
    from bench.bench_synthesis import write_paragraphs

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    monkeypatch.setenv("SLING_TEST_KEY", "sk-test")
    write_paragraphs(tmp_path, 2)
    code, err = run_stage(["pipeline.synthesize", "teacher=openai", "teacher.api_key_env=SLING_TEST_KEY",
                           "teacher.base_url=http://127.0.0.1:9/v1", "teacher.max_retries=0", "teacher.timeout_s=5"],
                          capsys)
    check_one_line(code, err, "http://127.0.0.1:9/v1", "teacher.base_url")


def test_a_teacher_without_its_key_names_the_variable(capsys, tmp_path, monkeypatch):
    from bench.bench_synthesis import write_paragraphs

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    monkeypatch.delenv("SLING_TEST_NO_KEY", raising=False)
    write_paragraphs(tmp_path, 2)
    code, err = run_stage(["pipeline.synthesize", "teacher=openai", "teacher.api_key_env=SLING_TEST_NO_KEY"], capsys)
    check_one_line(code, err, "SLING_TEST_NO_KEY", "teacher.api_key_env")


def test_the_library_raises_what_a_user_fixes_as_user_errors():
    from sling.data.benchmark import BenchmarkError
    from sling.data.synthesis import SynthesisError
    from sling.documents.read import DocumentError
    from sling.errors import ConfigError, InputError, UserError
    from sling.models.pretrained import PretrainedError
    from sling.retrieval.answering import AnswerError
    from sling.scoring.leakage import LeakageError
    from sling.teacher.client import TeacherError

    for error in (ConfigError, InputError, BenchmarkError, SynthesisError, DocumentError, PretrainedError, AnswerError,
                  LeakageError, TeacherError):
        assert issubclass(error, UserError), error


def test_a_bug_keeps_its_traceback(capsys):
    from sling.cli import run

    def main(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run(main)


def test_a_real_process_exits_1_with_one_line(tmp_path):
    """`python -m pipeline.general_data` on an empty work directory: its own exit status and stderr."""
    proc = subprocess.run([sys.executable, "-m", "pipeline.general_data"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SLING_WORKDIR": str(tmp_path)})
    last = check_one_line(proc.returncode, proc.stderr, str(tmp_path), "data.general_path")
    assert proc.stderr.count("error: ") == 1, proc.stderr[-2000:]
    assert last.count("\n") == 0
