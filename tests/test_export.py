"""The export stage on the packaged SmolLM2 with general and domain adapters trained here for a few steps: it writes the
merged safetensors, GGUF f16 and q8_0, the chat template and an Ollama Modelfile, and its gate passes them; an export
with a wrong chat template, and one with a single corrupted tensor, each fail the gate with their figure.

The probes are answer stage rows (results/students/domain_<task>.jsonl) written here from tests/test_index.py's
documents: the gate reads only their question, retrieved passages and answer. Every form is read back through
transformers' loaders, the GGUF ones through its GGUF loader.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from sling.io import write_jsonl
from tests.conftest import mlflow_db
from tests.test_index import DOCS
from tests.test_serving import DOMAIN, GENERAL, TRAIN

pytestmark = pytest.mark.integration

ROWS = [("What does LoRA train?", "lora.md", "LoRA learns two small matrices whose product is added to the frozen "
                                             "weight matrix."),
        ("Where does an embedded Qdrant keep its collections?", "qdrant.md", "In a local folder, with no server."),
        ("How often do bakers feed a sourdough starter?", "bakery.md", "Daily, and they bake once it has doubled.")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, base_dir) -> Path:
    """A work root after `python -m pipeline.export domain`: adapters, the answer rows it probes, the export."""
    from pipeline.export import main as export
    from sling.config import compose
    from sling.models.training import train

    root = tmp_path_factory.mktemp("export")
    (root / "models").mkdir()
    (root / "models/base").symlink_to(base_dir, target_is_directory=True)
    for name, rows in (("general", GENERAL), ("domain", DOMAIN)):
        write_jsonl(root / f"data/datasets/{name}/train.jsonl", rows)
        write_jsonl(root / f"data/datasets/{name}/eval.jsonl", rows[:1])
    (root / "data/benchmark").mkdir(parents=True)
    (root / "data/benchmark/tasks.json").write_text(json.dumps({"tasks": {"joint": {"documents": list(DOCS)}}}))
    write_jsonl(root / "results/students/domain_joint.jsonl", [
        {"id": f"q{i}", "question": q, "variant": "domain", "closed_book": False, "answer": a,
         "retrieved": [{"text": DOCS[doc].split("\n\n", 1)[1].strip(), "document": doc, "pages": [1]}]}
        for i, (q, doc, a) in enumerate(ROWS)])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLING_WORKDIR", str(root))
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_db(root / "mlflow.db"))
        cfg = compose(TRAIN)
        for stage in ("general", "domain"):
            train(cfg, stage, base_dir=base_dir)
        export(["domain", "export.probe_tokens=16"])
    return root


def test_the_export_writes_every_form_and_its_gate_passes(exported):
    out = exported / "models/export/domain"
    assert {p.name for p in out.iterdir()} >= {"merged", "sling-domain-f16.gguf", "sling-domain-q8_0.gguf", "Modelfile"}
    assert (out / "merged/model.safetensors").exists() and "ns.context" in (out / "merged/chat_template.jinja").read_text()
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./sling-domain-q8_0.gguf\n") and "{{ .System }}" in modelfile
    assert "PARAMETER repeat_penalty 1.15" in modelfile
    figures = json.loads((exported / "metrics/export/domain.json").read_text())
    forms = figures["forms"]
    assert set(forms) == {"merged", "f16", "q8_0"}
    assert all(f["positions"] > 20 and f["probes"] == 3 for f in forms.values())
    assert forms["merged"]["kl"] < 1e-4 and forms["f16"]["kl"] < 1e-3 and forms["q8_0"]["kl"] < figures["max_kl"]
    assert forms["f16"]["top1"] >= 0.95 and forms["q8_0"]["top1"] >= 0.9
    assert forms["merged"]["kl"] <= forms["f16"]["kl"] <= forms["q8_0"]["kl"]
    assert forms["q8_0"]["file"] == "sling-domain-q8_0.gguf" and forms["merged"]["file"] == "merged"


def gate_line(exported: Path, monkeypatch, forms) -> str:
    """The gate's one-line error for `forms`, measured against the adapter on the exported run's probes."""
    from sling.config import compose
    from sling.io import read_jsonl
    from sling.models.export import ExportGateError, check, measure, probes

    monkeypatch.setenv("SLING_WORKDIR", str(exported))
    cfg = compose(["export.probe_tokens=16"])
    items = probes(read_jsonl(exported / "results/students/domain_joint.jsonl"), cfg.rag.prompt_template, 16)
    figures = measure(cfg, "domain", forms, items)
    with pytest.raises(ExportGateError) as failed:
        check(figures, cfg.export.max_kl, cfg.export.min_top1)
    return str(failed.value)


def test_a_wrong_chat_template_fails_the_gate_with_its_figure(exported, tmp_path, monkeypatch):
    from sling.config import compose
    from sling.models.export import write_forms

    monkeypatch.setenv("SLING_WORKDIR", str(exported))
    wrong = (exported / "models/base/chat_template.jinja").read_text()  # SmolLM2's own ChatML: not the RAG prompt
    forms = write_forms(compose([]), "domain", tmp_path, wrong, kinds=("q8_0",))
    line = gate_line(exported, monkeypatch, {"q8_0": forms["q8_0"]})
    kl = float(re.search(r"q8_0: mean KL ([\d.e+-]+) nats > export.max_kl=0.02", line).group(1))
    assert kl > 0.1, line
    print(line)  # the figure, for the record (pytest -s)


def test_one_corrupted_tensor_fails_the_gate_with_its_figure(exported, tmp_path, monkeypatch):
    import gguf

    good = exported / "models/export/domain"
    shutil.copy(good / "sling-domain-f16.gguf", tmp_path / "broken.gguf")
    reader = gguf.GGUFReader(tmp_path / "broken.gguf", mode="r+")
    tensor = next(t for t in reader.tensors if t.name == "blk.3.attn_v.weight")
    tensor.data[...] = tensor.data[::-1].copy()  # its rows in reverse order: finite, plausible values, wrong places
    reader.data.flush()
    del reader
    line = gate_line(exported, monkeypatch, {"f16 with blk.3.attn_v rows reversed": (tmp_path, "broken.gguf")})
    assert re.search(r"f16 with blk\.3\.attn_v rows reversed: (mean KL [\d.e+-]+ nats > export.max_kl=0.02|"
                     r"top-1 agreement [\d.]+% < export.min_top1=90%)", line), line
    print(line)
