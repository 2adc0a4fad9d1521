"""The docs site (docs/, mkdocs.yml) builds strictly, and what it shows is current: `mkdocs build --strict` (a warning,
a broken link or anchor fails it) into a temporary folder; every generated section of the README and the pages is
what its recorded command prints now; the study's figure is what its data draws; the README's links into docs/ lead
to files and headings; every config key a page names is one the schema has."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import pytest
from markdown.extensions.toc import slugify

from sling import schema
from tests.conftest import ROOT
from tests.test_readme import generated_block

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Generated sections tests/test_readme.py checks, and the one nothing can: `dvc exp show` prints the experiments of
# the machine it runs on, which no commit holds.
CHECKED_IN_TEST_README = {"metrics", "study", "documents", "export", "scale"}
UNCHECKABLE = {"experiments": "dvc exp show reads the local experiments, not committed files"}


def sections() -> dict[str, list[str]]:
    """Each generated section's name and the pages holding it."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for name in re.findall(r"(?m)^<!-- generated:([\w-]+) -->$", page.read_text()):
            found.setdefault(name, []).append(page.relative_to(ROOT).as_posix())
    return found


def test_the_site_builds_strictly_and_offline(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about MkDocs 2.0, on every build
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    home = (tmp_path / "site" / "index.html").read_text()
    for title in ("Run on your documents", "Read the report", "Configuration reference", "Contributing"):
        assert title in home, f"the navigation lacks {title!r}"
    assert "fonts.googleapis" not in home and "fonts.gstatic" not in home, "theme.font must stay false: no network"
    assert "lora.r" in (tmp_path / "site" / "configuration.html").read_text()


def test_every_generated_section_has_one_home_and_a_check():
    found = sections()
    assert {n: p for n, p in found.items() if len(p) != 1} == {}, "a generated section in two places"
    unchecked = set(found) - CHECKED_IN_TEST_README - set(GENERATED_HERE) - set(UNCHECKABLE)
    assert not unchecked, f"add a check for {sorted(unchecked)} to tests/test_docs.py (GENERATED_HERE)"


GENERATED_HERE = ("headline", "summary", "config")


@pytest.mark.parametrize("name", GENERATED_HERE)
def test_a_generated_section_is_what_its_command_prints_now(name):
    """The section's own `_Produced by ..._` command, run now, prints its body."""
    page = next(ROOT / p for p in sections().get(name, ["README.md"]))
    produced = re.search(rf"<!-- generated:{name} -->\n_Produced by `([^`]+)`._", page.read_text())
    assert produced, f"{page.name} lost its generated {name} section: run `python scripts/update_readme.py`"
    command = produced.group(1).split()
    body = subprocess.run([sys.executable, *command[1:]] if command[0] == "python" else command, cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    flag = {"config": "--config"}.get(name, "--study")
    assert generated_block(name).strip() == body, f"{name} is stale: run `python scripts/update_readme.py {flag}`"


def test_the_study_figure_is_what_its_data_draws(tmp_path):
    subprocess.run([sys.executable, "scripts/update_readme.py", "--figure", str(tmp_path / "forest.svg")], cwd=ROOT,
                   check=True, capture_output=True)
    assert (tmp_path / "forest.svg").read_bytes() == (ROOT / "docs/assets/study_forest.svg").read_bytes(), \
        "docs/assets/study_forest.svg is stale: run `python scripts/update_readme.py --study`"


def headings(page) -> set[str]:
    """The anchors Python-Markdown's toc gives a page's headings (the text without its code marks)."""
    return {slugify(h.replace("`", ""), "-") for h in re.findall(r"(?m)^#{1,6} (.+)$", page.read_text())}


def test_the_readmes_links_into_docs_lead_somewhere():
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", (ROOT / "README.md").read_text())
    assert links, "the README links nowhere into docs/"
    for path, anchor in links:
        assert (ROOT / path).is_file(), f"README.md links to {path}, which does not exist"
        if anchor:
            assert anchor in headings(ROOT / path), f"README.md links to {path}#{anchor}, a heading it lacks"


# A config key as pages write it: `lora.r`, `-S train.lr=2e-4`, `data.tasks.joint.documents`, and an override in a
# command (-S lora.r=8); placeholders (<task>) and globs (benchmark.*) are not keys.
KEY = re.compile(r"`(?:-S )?'?((?:%s)\.[a-z0-9_]+(?:\.[a-z0-9_]+)*)(?:=[^`]*)?'?`" % "|".join(
    f.name for f in dataclasses.fields(schema.Config)))


OVERRIDE = re.compile(r"-S '?((?:%s)\.[a-z0-9_.]+)=" % "|".join(f.name for f in dataclasses.fields(schema.Config)))
# What reads as a key and is not one: files, and the export's MLflow tags (docs/model.md).
NOT_KEYS = re.compile(r"\.(dvc|csv|json|jsonl|yaml|py|md|html)$|^export\.(kl|top1)$")


def test_every_config_key_a_page_names_is_in_the_schema():
    unknown = sorted({f"{page.relative_to(ROOT)}: {key}" for page in PAGES
                      for key in KEY.findall(page.read_text()) + OVERRIDE.findall(page.read_text())
                      if schema.field_of(key) is None and not NOT_KEYS.search(key)})
    assert not unknown, "pages name keys sling/schema.py lacks (renamed? moved?):\n" + "\n".join(unknown)
