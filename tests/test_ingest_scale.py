"""Ingest at scale (issue 10): worker-count invariance and the per-document cache."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest

from sling.documents.render import make_pdf
from tests.test_ingest import make_bad_files, make_text_files, run_ingest

OUTPUTS = ("data/ingested/paragraphs.jsonl", "data/ingested/manifest.json", "metrics/ingest.json")


def counts(caplog) -> tuple[int, int]:
    """(partitioned, cached) from the stage's log line of the last run."""
    found = [re.search(r"ingest: (\d+) documents to partition, (\d+) from the cache", r.getMessage())
             for r in caplog.records]
    last = [m for m in found if m][-1]
    return int(last.group(1)), int(last.group(2))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scale_corpus")
    for i in range(3):
        make_pdf(folder / f"paper_{i}.pdf", sections=4 + i)
    make_text_files(folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    bad = tmp_path_factory.mktemp("bad")
    make_bad_files(bad, folder / "paper_0.pdf")
    shutil.copy(bad / "scanned.pdf", folder / "logo.pdf")  # an image-only page: OCR runs and finds no text
    return folder


def test_one_worker_and_two_give_the_same_bytes(folder, tmp_path):
    one = run_ingest(folder, tmp_path / "one", "ingest.workers=1")
    two = run_ingest(folder, tmp_path / "two", "ingest.workers=2")
    for out in OUTPUTS:
        assert (one / out).read_bytes() == (two / out).read_bytes(), out


def test_rerun_partitions_nothing_and_a_new_file_only_itself(folder, tmp_path, caplog):
    corpus = tmp_path / "corpus"
    shutil.copytree(folder, corpus)
    caplog.set_level(logging.INFO, logger="ingest")
    cold = run_ingest(corpus, tmp_path / "work", "ingest.workers=1")
    first = [(cold / out).read_bytes() for out in OUTPUTS]
    partitioned, cached = counts(caplog)
    assert partitioned > 0 and cached == 0
    run_ingest(corpus, tmp_path / "work", "ingest.workers=1")
    assert counts(caplog) == (0, partitioned)  # skipped files too: the logo is not OCR'd again
    assert [(cold / out).read_bytes() for out in OUTPUTS] == first  # the cache gives back the same bytes
    make_pdf(corpus / "paper_new.pdf", sections=3)
    run_ingest(corpus, tmp_path / "work", "ingest.workers=1")
    assert counts(caplog) == (1, partitioned)


def test_workers_must_be_positive(folder, tmp_path):
    from sling.errors import UserError

    with pytest.raises(UserError, match="ingest.workers"):
        run_ingest(folder, tmp_path, "ingest.workers=0")
