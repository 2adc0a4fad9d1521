"""DVC's plots page as a person sees it: `dvc plots show` and `dvc plots diff` (real DVC) on the plot files the stages
write with their own writers, in a throwaway git + DVC workspace with this repository's dvc.yaml, params.yaml and
.dvc/ templates. Fails on a false zero (an empty cell drawn as 0), a plot drawn twice, an empty panel, an experiment
missing from a diff, or a page that loads its scripts from the network."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, venv_env

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / ".dvc" / "plots_page.html"
TASKS = ("joint", "single")
VARIANTS = ("base", "general", "domain")
EVAL_STEPS = 4


def dvc(ws: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=ws, env=venv_env({"DVC_NO_ANALYTICS": "1"}),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def git(ws: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=ws, check=True,
                   capture_output=True)


def trainer_log_history(steps: int, start: float) -> list[dict]:
    """What transformers' Trainer keeps in state.log_history: train loss every step, eval loss every EVAL_STEPS
    steps (entries of their own), and the run's summary, each with its step."""
    history = []
    for step in range(1, steps + 1):
        history.append({"loss": start / (1 + 0.1 * step), "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": step / steps,
                        "step": step})
        if step % EVAL_STEPS == 0:
            history.append({"eval_loss": start / (1 + 0.05 * step), "eval_runtime": 0.5, "epoch": step / steps,
                            "step": step})
    history.append({"train_runtime": 9.0, "train_loss": start / 2, "epoch": 1.0, "step": steps})
    return history


def write_run(shift: float) -> None:
    """One pipeline run's plot files, each by the function its stage writes it with (under SLING_WORKDIR)."""
    from sling.config import resolve_path
    from sling.io import write_json
    from sling.models.training import loss_curves, write_curves
    from sling.paths import CHUNK_LENGTHS, QUESTION_SCORES_PLOT, VARIANT_SCORES_PLOT
    from sling.retrieval.chunking import chunk_histogram
    from sling.scoring.metrics import question_points, variant_bars

    for stage, start in (("general", 2.4), ("domain", 1.9)):
        write_curves(loss_curves(trainer_log_history(12, start + shift)), stage)
    for i, task in enumerate(TASKS):
        lengths = [40 + (7 * k + 13 * i) % 90 for k in range(30)]
        write_json(resolve_path(CHUNK_LENGTHS.format(task=task)), chunk_histogram(task, lengths, 128))
    table = {task: [{"id": f"{task}-{q:02d}", **{f"{v}_cosine": round(0.3 + 0.1 * j + 0.01 * q + shift, 4)
                                                   for j, v in enumerate(VARIANTS)},
                     **{f"{v}_token_f1": round(0.1 + 0.05 * j + 0.01 * q, 4) for j, v in enumerate(VARIANTS)}}
                    for q in range(5)] for task in TASKS}
    scores = {task: {"variants": {v: {"rescaled": round(0.1 * j - 0.05 + shift, 4)} for j, v in enumerate(VARIANTS)}}
              for task in TASKS}
    write_json(resolve_path(QUESTION_SCORES_PLOT), question_points(table, list(VARIANTS)))
    write_json(resolve_path(VARIANT_SCORES_PLOT), variant_bars(scores))


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A git + DVC repository with this project's pipeline definition and plot templates, and one run's plots."""
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q")
    dvc(ws, "init", "-q")
    for rel in ("dvc.yaml", "params.yaml", ".dvc/config"):
        shutil.copy(ROOT / rel, ws / rel)
    shutil.copytree(ROOT / ".dvc" / "plots", ws / ".dvc" / "plots")
    monkeypatch.setenv("SLING_WORKDIR", str(ws))
    write_run(0.0)
    return ws


def quantitative_fields(spec) -> set[str]:
    """The data fields a Vega-Lite spec draws on a quantitative x or y axis, in any layer."""
    found = set()
    if isinstance(spec, dict):
        for channel in ("x", "y"):
            enc = spec.get("encoding", {}).get(channel)
            if isinstance(enc, dict) and enc.get("type") == "quantitative" and "field" in enc:
                found.add(enc["field"].replace("\\", ""))
        for value in spec.values():
            found |= quantitative_fields(value)
    elif isinstance(spec, list):
        for value in spec:
            found |= quantitative_fields(value)
    return found


def is_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# Keys DVC adds to each row (and `step`, which it also writes as a row index where a plot names no x)
DVC_KEYS = {"rev", "filename", "field", "filename::field", "dvc_inferred_y_value", "step"}


def page_problems(shown: dict, revisions: int = 1) -> list[str]:
    """What is wrong with `dvc plots show/diff --json`: a panel with no rows, or without every revision; a row with
    no number where its panel draws one on an axis (an empty CSV cell: Vega draws it at 0); a panel whose rows all
    appear in another panel (the same file drawn twice)."""
    problems, panels = [], {}
    for name, renders in shown["data"].items():
        for render in renders:
            rows = render["content"].get("data", {}).get("values", []) if render["type"] == "vega" else []
            revs = {r.get("rev") for r in rows}
            if len(revs) < revisions:
                problems.append(f"{name}: rows from {len(revs)} of {revisions} revisions")
            for field in sorted(quantitative_fields(render["content"])):
                bad = [r for r in rows if not is_number(r.get(field))]
                if bad:
                    problems.append(f"{name}: {len(bad)} of {len(rows)} rows have no number in {field!r}, "
                                    f"e.g. {bad[0]}")
            panels[name] = {json.dumps({k: v for k, v in r.items() if k not in DVC_KEYS}, sort_keys=True)
                            for r in rows}
    for name, rows in panels.items():
        problems += [f"{name}: its rows are all drawn again in {other}" for other, others in panels.items()
                     if other != name and rows <= others]
    return problems


def test_page_problems_finds_the_false_zeros_and_copies_of_a_combined_curve_file():
    """The check itself: the old layout (one CSV with an empty eval_loss cell on most steps, plotted at the top level
    and again as a stage's plot) is flagged, as `dvc plots show --json` gave it."""
    rows = [{"step": "2", "train_loss": "2.3", "eval_loss": ""}, {"step": "4", "train_loss": "2.1", "eval_loss": "1.8"}]

    def spec(y: str, values: list[dict]) -> dict:
        axes = {"x": {"field": "step", "type": "quantitative"}, "y": {"field": y, "type": "quantitative"}}
        return {"type": "vega", "content": {"data": {"values": values}, "layer": [{"encoding": axes}]}}

    folded = [{**r, "dvc_inferred_y_value": r[f], "rev": "workspace", "filename::field": f"train_general.csv::{f}"}
              for f in ("train_loss", "eval_loss") for r in rows]
    shown = {"data": {"Loss curves": [spec("dvc_inferred_y_value", folded)],
                      "plots/train_general.csv": [spec("eval_loss", [{**r, "rev": "workspace"} for r in rows])]}}
    problems = page_problems(shown)
    assert any("Loss curves: 1 of 4 rows have no number in 'dvc_inferred_y_value'" in p for p in problems), problems
    assert "plots/train_general.csv: its rows are all drawn again in Loss curves" in problems, problems


def test_plots_show_draws_each_plot_once_with_data_and_no_false_zero(workspace):
    shown = json.loads(dvc(workspace, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    names = set(shown["data"])
    loss = next(n for n in names if n.startswith("Loss curves"))
    assert names == {loss, "Rescaled cosine per task and variant", "Per-question cosine",
                     *(f"plots/chunk_lengths/{t}.json" for t in TASKS)}, names
    assert all(len(r) == 1 for r in shown["data"].values())
    assert page_problems(shown) == []
    rows = shown["data"][loss][0]["content"]["data"]["values"]
    eval_steps = {int(r["step"]) for r in rows if r["filename"] == "general/eval.csv"}
    assert eval_steps == {4, 8, 12}  # eval loss where it was measured, nowhere else
    assert len([r for r in rows if r["filename"] == "general/train.csv"]) == 12
    bars = shown["data"]["Rescaled cosine per task and variant"][0]["content"]["data"]["values"]
    assert {r["variant"] for r in bars} == {f"{t} / {v}" for t in TASKS for v in VARIANTS}


def test_plots_diff_draws_both_experiments_in_every_panel(workspace):
    git(workspace, "add", "-A")
    git(workspace, "commit", "-qm", "run 1")
    write_run(0.1)  # a second run, as `dvc exp run -S ...` leaves it in the workspace
    shown = json.loads(dvc(workspace, "plots", "diff", "HEAD", "--json").stdout)
    assert len(shown["data"]) == 2 + len(TASKS) + 1
    assert page_problems(shown, revisions=2) == []
    bars = shown["data"]["Rescaled cosine per task and variant"][0]["content"]
    assert bars["encoding"]["yOffset"]["field"] == "rev"  # each experiment's bar beside the other's


REMOTE_SCRIPT = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']?(https?:)?//""", re.I)


def test_the_page_loads_no_script_from_the_network(workspace):
    """The page .dvc/config names (written by scripts/install.sh) inlines Vega; DVC's default loads it from a CDN."""
    from dvc_render.vega import VegaRenderer

    assert REMOTE_SCRIPT.search(VegaRenderer.SCRIPTS)  # the check finds DVC's own CDN tags
    assert PAGE.is_file(), f"{PAGE} is missing: run scripts/install.sh (or python scripts/plots_page.py)"
    shutil.copy(PAGE, workspace / ".dvc" / PAGE.name)
    dvc(workspace, "plots", "show", "-o", "page")
    html = (workspace / "page" / "index.html").read_text(encoding="utf-8")
    assert not REMOTE_SCRIPT.search(html), REMOTE_SCRIPT.search(html).group(0)
    assert html.count("vegaEmbed('#") == 2 + len(TASKS) + 1
    for name in ("vega", "vegaLite", "vegaEmbed"):  # the three libraries define their globals inline
        assert re.search(rf"\.{name}\s*=|\b{name}\s*=|\"{name}\"|'{name}'", html), name
