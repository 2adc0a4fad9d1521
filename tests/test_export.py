"""The export stage on the packaged SmolLM2 with general and domain adapters trained here for a few steps: it writes the
merged safetensors, GGUF f16 and q8_0, the chat template and an Ollama Modelfile, its gate passes them (KL and top-1
on the probes, the paired benchmark difference), and it registers each form in a real SQLite MLflow registry with
the figures as tags; an export with a wrong chat template, and one with a single corrupted tensor, each fail the
gate with their figure, and a paired interval wholly below -export.tolerance fails it too.

The answer stage rows (results/students/domain_<task>.jsonl) are the domain adapter's own answers, made here by the
answer stage's code (sling.retrieval.answering) for questions over tests/test_index.py's documents, and the
references (results/reference/) are hand-written. Every form is read back through transformers' loaders, the GGUF
ones through its GGUF loader.
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

EXPORT = ["export.probe_tokens=16", "rag.max_new_tokens=24"]
ROWS = [("What does LoRA train?", "lora.md", "LoRA learns two small matrices whose product is added to the frozen "
                                             "weight matrix."),
        ("Where does an embedded Qdrant keep its collections?", "qdrant.md", "In a local folder, with no server."),
        ("How often do bakers feed a sourdough starter?", "bakery.md", "Daily, and they bake once it has doubled.")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, base_dir) -> Path:
    """A work root after `python -m pipeline.export domain`: adapters, the answer rows it probes, the export."""
    from pipeline.export import main as export
    from sling.config import compose
    from sling.models.loading import load_tokenizer
    from sling.models.training import train
    from sling.retrieval.answering import answer_locally, build_prompt, load_answerer

    root = tmp_path_factory.mktemp("export")
    (root / "models").mkdir()
    (root / "models/base").symlink_to(base_dir, target_is_directory=True)
    for name, rows in (("general", GENERAL), ("domain", DOMAIN)):
        write_jsonl(root / f"data/datasets/{name}/train.jsonl", rows)
        write_jsonl(root / f"data/datasets/{name}/eval.jsonl", rows[:1])
    (root / "data/benchmark").mkdir(parents=True)
    (root / "data/benchmark/tasks.json").write_text(json.dumps({"tasks": {"joint": {"documents": list(DOCS)}}}))
    retrieved = [[{"text": DOCS[doc].split("\n\n", 1)[1].strip(), "document": doc, "pages": [1]}] for _, doc, _ in ROWS]
    write_jsonl(root / "results/reference/joint.jsonl", [
        {"id": f"q{i}", "question": q, "answer": a, "reference_source": "hand-written"} for i, (q, _, a) in enumerate(ROWS)])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLING_WORKDIR", str(root))
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_db(root / "mlflow.db"))
        cfg = compose(TRAIN + EXPORT)
        for stage in ("general", "domain"):
            train(cfg, stage, base_dir=base_dir)
        prompts = [build_prompt(cfg.rag, q, chunks) for (q, _, _), chunks in zip(ROWS, retrieved)]
        answers = answer_locally(cfg.model, cfg.rag, load_answerer(cfg.model, cfg.rag, "domain"), load_tokenizer(),
                                 prompts)  # the answer stage's
        write_jsonl(root / "results/students/domain_joint.jsonl", [
            {"id": f"q{i}", "question": q, "variant": "domain", "closed_book": False, "answer": a["answer"],
             "retrieved": chunks} for i, ((q, _, _), chunks, a) in enumerate(zip(ROWS, retrieved, answers))])
        export(["domain", *EXPORT])
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


def test_every_form_answers_the_held_out_questions_like_the_adapter(exported):
    """Each form answered the benchmark questions the adapter answered; the paired difference of rescaled cosine,
    form minus adapter, is in metrics/export/<variant>.json with its interval and question count. The merged form
    in float32 is the weights the answer stage merged: it answers exactly as the adapter did."""
    figures = json.loads((exported / "metrics/export/domain.json").read_text())
    for form, f in figures["forms"].items():
        (d,) = f["benchmark"]
        assert (d["task"], d["metric"], d["questions"]) == ("joint", "rescaled", 3), form
        assert d["ci"][0] <= d["mean"] <= d["ci"][1] and d["ci"][1] >= -figures["tolerance"], form
        print(form, d)  # the figure, for the record (pytest -s)
    assert figures["forms"]["merged"]["benchmark"][0]["mean"] == 0 == figures["forms"]["merged"]["benchmark"][0]["ci"][1]


def test_each_form_is_a_registry_version_tagged_with_its_figures_and_loads_by_the_mlflow_api(exported, monkeypatch):
    import mlflow
    import pandas as pd

    from sling.tracking.registry import export_name

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_db_uri(exported))
    client = mlflow.MlflowClient()
    figures = json.loads((exported / "metrics/export/domain.json").read_text())["forms"]
    for form, f in figures.items():
        (version,) = client.search_model_versions(f"name='{export_name('domain', form)}'")
        tags = version.tags
        assert float(tags["export.kl"]) == pytest.approx(f["kl"], rel=1e-5) and float(tags["export.top1"]) == f["top1"]
        d = f["benchmark"][0]
        assert float(tags["export.joint.rescaled_difference"]) == pytest.approx(d["mean"], abs=1e-4)
        assert [float(tags[f"export.joint.rescaled_difference.ci_{e}"]) for e in ("low", "high")] == \
            pytest.approx(d["ci"], abs=1e-4)
        assert tags["export.joint.rescaled_difference.questions"] == "3" and tags["sling.variant"] == "domain"
        assert tags["export.form"] == form and tags["sling.adapters"] == "general,domain"
        assert tags["sling.base.path"].endswith(f"models/export/domain/{f['file']}")
    model = mlflow.pyfunc.load_model(f"models:/{export_name('domain', 'q8_0')}/1")
    (answer,) = model.predict(pd.DataFrame({"question": [ROWS[0][0]], "context": ["LoRA trains two small matrices."]}),
                              params={"max_new_tokens": 8})
    assert answer.strip()


def mlflow_db_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def test_a_paired_interval_wholly_below_the_tolerance_fails_the_gate_naming_the_form_and_figure():
    from omegaconf import OmegaConf

    from sling.models.export import Difference, ExportGateError, Figures, check

    export = OmegaConf.create({"max_kl": 0.02, "min_top1": 0.9, "tolerance": 0.05})
    close = Figures(kl=0.001, top1=0.98, positions=400, probes=16,
                    benchmark=(Difference("joint", -0.04, (-0.09, 0.01), 25),))
    check({"q8_0": close}, export)  # an interval reaching above -0.05 passes, however low its mean
    worse = Figures(kl=0.001, top1=0.98, positions=400, probes=16,
                    benchmark=(Difference("joint", -0.21, (-0.33, -0.08), 25),))
    with pytest.raises(ExportGateError, match=r"q4_1: joint rescaled cosine -0\.210 \[-0\.330, -0\.080\] minus the "
                                              r"adapter's over 25 benchmark questions, wholly below "
                                              r"-export\.tolerance=-0\.05"):
        check({"q8_0": close, "q4_1": worse}, export)


def gate_line(exported: Path, monkeypatch, forms) -> str:
    """The gate's one-line error for `forms`, measured against the adapter on the exported run's probes."""
    from sling.config import compose
    from sling.io import read_jsonl
    from sling.models.export import ExportGateError, check, measure, probes

    monkeypatch.setenv("SLING_WORKDIR", str(exported))
    cfg = compose(EXPORT)
    items = probes(read_jsonl(exported / "results/students/domain_joint.jsonl"), cfg.rag.prompt_template, 16)
    figures = measure(cfg.model, cfg.export, "domain", forms, items)
    with pytest.raises(ExportGateError) as failed:
        check(figures, cfg.export)
    return str(failed.value)


def test_a_wrong_chat_template_fails_the_gate_with_its_figure(exported, tmp_path, monkeypatch):
    from sling.config import compose
    from sling.models.export import write_forms

    monkeypatch.setenv("SLING_WORKDIR", str(exported))
    wrong = (exported / "models/base/chat_template.jinja").read_text()  # SmolLM2's own ChatML: not the RAG prompt
    cfg = compose([])
    forms = write_forms(cfg.model, cfg.rag, cfg.export, "domain", tmp_path, wrong, kinds=("q8_0",))
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
