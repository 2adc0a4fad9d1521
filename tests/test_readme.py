"""The README and the docs pages' figures come from the repository's metrics, and the README's set-up commands are the
ones CI runs, on its first screen."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def generated_block(name: str) -> str | None:
    """The body of the one `<!-- generated:NAME -->` section in README.md or a page under docs/, else None."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        block = re.search(rf"<!-- generated:{name} -->\n_Produced by `[^`]+`._\n\n(.*?)\n<!-- /generated:{name} -->",
                          page.read_text(), re.S)
        if block:
            return block.group(1)
    return None


def check_generated_section(name: str, flag: str, lost: str, stale: str) -> None:
    """The `<!-- generated:NAME -->` block (README.md or docs/) is what `scripts/update_readme.py FLAG` prints now."""
    block = generated_block(name)
    assert block is not None, lost
    table = subprocess.run([sys.executable, "scripts/update_readme.py", flag], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert block.strip() == table, stale


def test_generated_results_table_matches_the_committed_metrics():
    check_generated_section("metrics", "--table", "docs/report.md lost its generated results section",
                            "the default profile's results are stale: run `python scripts/update_readme.py`")


def test_ci_runs_the_readme_commands_verbatim_in_a_shell_without_the_venv():
    """.ci/run runs README command 1 in a subshell (its `activate` ends there) and command 2 as typed into a new shell,
    then only the optional llama.cpp extra's step: no other line activates the venv, so a test that finds `python` or `dvc` on PATH fails in CI."""
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(bash scripts/install\.sh && [^\n]+)\n```", readme)
    assert commands == ["bash scripts/install.sh && . .venv/bin/activate && dvc repro",
                        "bash scripts/install.sh && .venv/bin/python -m pytest"]
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    assert f"({commands[0]})" in lines and commands[1] in lines
    # after the README's test command, only the optional llama.cpp extra's own step (built, then its marked tests)
    assert lines[lines.index(commands[1]) + 1:] == ["bash scripts/install.sh --llamacpp && "
                                                    ".venv/bin/python -m pytest -m llamacpp"]
    assert [line for line in lines if "activate" in line] == [f"({commands[0]})"]


def test_the_readme_is_a_front_door():
    """At most 200 lines, with both set-up commands on its first screen (its first 30 lines); the manual is docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move the detail to a page under docs/"
    first = "\n".join(lines[:30])
    for command in ("bash scripts/install.sh && . .venv/bin/activate && dvc repro",
                    "bash scripts/install.sh && .venv/bin/python -m pytest"):
        assert f"```bash\n{command}\n```" in first, f"README.md's first 30 lines lack `{command}`"


def test_the_study_section_matches_the_committed_study_results():
    check_generated_section("study", "--study-table",
                            "docs/study.md lost its study section: run `python scripts/update_readme.py --study`",
                            "the study section is stale: run `python scripts/update_readme.py --study`")


def test_the_documents_section_matches_the_committed_real_documents_run():
    check_generated_section("documents", "--documents-table",
                            "docs/documents.md lost its real-documents section: run "
                            "`python scripts/update_readme.py --documents`",
                            "the real-documents section is stale: run `python scripts/update_readme.py --documents`")


def test_the_export_section_matches_the_committed_export_figures():
    check_generated_section("export", "--export-table",
                            "docs/model.md lost its export figures: run `python scripts/update_readme.py --export`",
                            "the export figures are stale: run `python scripts/update_readme.py --export`")


def test_the_real_documents_benchmark_is_well_formed():
    """The questions the committed real-documents run kept (scripts/documents_run.py): at least 90% are questions that
    name their subject, with a reference that does not repeat them (the documents' own text is not committed, so the
    verbatim-copy check ran in the pipeline only)."""
    import json

    from sling.teacher.quality import validity_problem

    rows = [json.loads(line) for path in sorted((ROOT / "results/documents/questions").glob("*.jsonl"))
            for line in path.read_text().splitlines()]
    assert rows, "results/documents/questions/ is empty: run scripts/documents_run.py"
    good = [r for r in rows if r["question"].strip().endswith("?")
            and validity_problem(r["question"], r["reference"], "", r.get("language")) is None]
    assert len(good) >= 0.9 * len(rows), [r["question"] for r in rows if r not in good]


def test_the_scaling_estimate_matches_the_committed_run_and_sources():
    """docs/scale.md: the 10,000-paper estimate is what scripts/scale_estimate.py computes from the committed
    real-documents run and bench/published.yaml (with the paper's SAI set in ../shared/seed for a paper's size)."""
    import pytest

    if not (ROOT.parent / "shared/seed/SAI_dataset/SAI_dataset_0312.csv").exists():
        pytest.skip("../shared/seed is not beside the repository")
    check_generated_section("scale", "--scale-table",
                            "docs/scale.md lost its scaling estimate: run `python scripts/update_readme.py --scale`",
                            "the scaling estimate is stale: run `python scripts/update_readme.py --scale`")


def test_the_study_says_which_one_seed_claims_survive_the_seeds_pooled():
    """A claim the first seed alone makes (its interval over questions excludes 0) and the seeds pooled do not is
    said not to survive; one both make survives; each seed is named in its own order, not scores.json's sorted keys."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from update_readme import seed_fates

    def diff(per_seed, per_seed_ci, ci):
        return {"mean": sum(per_seed) / len(per_seed), "ci": ci, "per_seed": per_seed, "per_seed_ci": per_seed_ci,
                "seeds": [42, 1, 2]}

    lucky = diff([0.20, 0.00, -0.05], [[0.05, 0.35], [-0.15, 0.15], [-0.20, 0.10]], [-0.12, 0.25])
    solid = diff([0.20, 0.22, 0.18], [[0.05, 0.35], [0.07, 0.37], [0.03, 0.33]], [0.04, 0.36])
    per_seed = {"1": {}, "2": {}, "42": {}}  # as scores.json writes it: keys sorted
    scores = {"joint": {"questions": 25, "variants": {"base": {}, "domain": {"per_seed": per_seed}},
                        "paired": {"domain-base": {"rescaled": solid, "token_f1_rescaled": lucky}}},
              "single": {"questions": 11, "variants": {"base": {}, "domain": {"per_seed": per_seed}},
                         "paired": {"domain-base": {"rescaled": solid, "token_f1_rescaled": solid}}}}
    text = "\n".join(seed_fates(scores, ["base", "domain"], 20))
    assert "| joint | domain minus base | rescaled cosine | 42: +0.200 [+0.050, +0.350]; 1: +0.220" in text
    assert re.search(r"rescaled cosine \|.*\| survives \|", text)
    assert re.search(r"rescaled token F1 \|.*\| \*\*does not survive\*\* \|", text)
    assert "made: 2; of them surviving the seeds pooled: 1" in text
    assert "single (11 questions): below eval.min_questions (20)" in text
    assert seed_fates({"joint": {**scores["joint"], "paired": {"domain-base": {"rescaled": {"mean": 0.2, "ci": [0.1, 0.3]}}}}},
                      ["base", "domain"], 20) == []  # one seed: nothing to say here (the headline says "not yet tested")


def test_a_comparison_with_one_single_seed_side_is_not_counted_as_tested():
    """A sweep point trained once against a recipe with three seeds: the pooled interval resamples the recipe's seeds
    only, so its fate says which side stayed untested and the claim count leaves it out."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from update_readme import seed_fates

    solid = {"mean": 0.2, "ci": [0.04, 0.36], "per_seed": [0.20, 0.22, 0.18], "seeds": [42, 1, 2],
             "per_seed_ci": [[0.05, 0.35], [0.07, 0.37], [0.03, 0.33]]}
    three = {"per_seed": {"1": {}, "2": {}, "42": {}}}
    scores = {"joint": {"questions": 25,
                        "variants": {"base": {}, "domain_raft": three, "domain_raft_x": {"per_seed": {"42": {}}}},
                        "paired": {"domain_raft-base": {"rescaled": solid, "token_f1_rescaled": solid},
                                   "domain_raft_x-base": {"rescaled": {"mean": 0.2, "ci": [0.1, 0.3]}},
                                   "domain_raft_x-domain_raft": {"rescaled": solid, "token_f1_rescaled": solid}}}}
    text = "\n".join(seed_fates(scores, ["base", "domain_raft", "domain_raft_x"], 20))
    assert re.search(r"\| domain_raft minus base \| rescaled cosine \|.*\| survives \|", text)
    assert re.search(r"\| domain_raft_x minus domain_raft \| rescaled cosine \|.*\(1 seed of domain_raft_x, 3 seeds of "
                     r"domain_raft\) \| survives \(varying domain_raft's seeds only; domain_raft_x: 1 seed, untested\) \|", text)
    assert "made: 2; of them surviving the seeds pooled: 2" in text  # domain_raft minus base only, both metrics
    assert "Not counted: 2 rows where one side has a single training seed" in text
