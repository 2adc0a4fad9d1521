"""The typed config (sling.schema): every preset composes typed and validates, every key has a doc, DVC's own
composition uses the schema, and params.yaml is typed when a stage loads it."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from omegaconf import MISSING, OmegaConf

from sling import schema
from sling.config import CONF_DIR, PARAMS, ROOT, compose, load_config, validate
from sling.errors import ConfigError

PRESETS = [(g, p.stem) for g in ("experiment", "data", "model", "teacher") for p in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize("group,preset", PRESETS)
def test_every_preset_composes_typed_and_validates(group, preset):
    required = ["data.corpus_dir=corpus/sample/documents"] if preset == "documents" else []
    cfg = compose([f"{group}={preset}", *required])
    validate(cfg)
    for section in ("model", "teacher", "data", "ingest", "synth", "dataset", "benchmark", "lora", "train", "rag", "eval"):
        kind = OmegaConf.get_type(cfg[section])
        assert dataclasses.is_dataclass(kind) and kind.__module__ == "sling.schema", (section, kind)
    if group != "experiment":  # the preset's own schema: its keys, in its order
        node = cfg[group]
        assert list(node) == [f.name for f in dataclasses.fields(OmegaConf.get_type(node))]


def test_every_schema_field_has_a_doc_and_its_default_passes_its_checks():
    for cls in schema.schema_classes():
        for f in dataclasses.fields(cls):
            doc = f.metadata.get("doc")
            assert isinstance(doc, str) and doc.strip() and "\n" not in doc, f"{cls.__name__}.{f.name} has no doc"
            assert set(f.metadata) <= {"doc", "missing", *schema.CHECKS}, f"{cls.__name__}.{f.name}"
            if f.default is not dataclasses.MISSING and f.default is not MISSING and "${" not in str(f.default):
                assert schema.value_ok(f, f.default), f"{cls.__name__}.{f.name}: default {f.default!r}"


def test_a_rule_reads_as_the_key_and_what_it_must_be():
    assert schema.describe(schema.field_of("lora.r")) == "a positive integer"
    assert schema.describe(schema.field_of("lora.dropout")) == "a number in [0, 1)"
    assert schema.describe(schema.field_of("train.general_epochs")) == "null or a positive number"
    assert schema.describe(schema.field_of("benchmark.critic.enabled")) == "one of auto, true, false"
    assert schema.describe(schema.field_of("data.tasks.single.questions")) == "a string"
    assert schema.field_of("lora.nope") is None


def _dvc_compose(tmp_path, overrides: list[str]) -> subprocess.CompletedProcess:
    """dvc.utils.hydra.compose_and_dump called as `dvc exp run -S` calls it (dvc/repo/experiments/queue/base.py):
    in a fresh process whose sys.path lacks the repository, so only the plugin scan can bring in the schema."""
    code = (
        "import json, os, sys\n"
        "from dvc.utils.hydra import compose_and_dump\n"
        f"root = {str(ROOT)!r}\n"
        "compose_and_dump(sys.argv[1], os.path.join(root, 'conf'), None, 'config', os.path.join(root, ''),\n"
        "                 json.loads(sys.argv[2]))\n"
        "assert 'hydra_plugins.sling_schema' in sys.modules and root not in sys.path\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code, str(tmp_path / "params.yaml"), json.dumps(overrides)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_dvc_composes_conf_with_the_schema(tmp_path):
    proc = _dvc_compose(tmp_path, [])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "params.yaml").read_bytes() == PARAMS.read_bytes()  # what `dvc exp run` writes: the committed one

    overrides = ["lora.r=8", "data=paper", "teacher=openai", "train.general_epochs=1"]
    proc = _dvc_compose(tmp_path, overrides)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "params.yaml").read_text() == OmegaConf.to_yaml(compose(overrides), resolve=True)

    for bad, key in (["lora.r=abc"], "lora.r"), (["lora.rr=3"], "rr"), (["model=phi-1_5", "model.dtype=[1]"], "dtype"):
        proc = _dvc_compose(tmp_path, bad)
        assert proc.returncode != 0 and key in proc.stderr, (bad, proc.stderr[-2000:])


def test_params_yaml_is_typed_when_a_stage_loads_it(tmp_path, monkeypatch):
    import sling.config

    params = tmp_path / "params.yaml"
    monkeypatch.setattr(sling.config, "PARAMS", params)
    for overrides in ([], ["teacher=openai", "data=paper"]):
        text = OmegaConf.to_yaml(compose(overrides), resolve=True)
        params.write_text(text)
        cfg = load_config([])
        assert OmegaConf.to_yaml(cfg) == text  # the same keys, values and order the stages wrote before
        assert OmegaConf.get_type(cfg.lora) is schema.Lora and cfg.teacher.get("extra_body") is None
        cfg.seed = 7  # a stage may still set a key (pipeline.train --seed)
    committed = OmegaConf.load(PARAMS)
    for key, value, message in (("lora.r", "abc", "lora.r must be a positive integer, got 'abc'"),
                                ("teacher.bogus", 1, "teacher.bogus is not a config key of Teacher"),
                                ("rag.nope", 1, "rag.nope is not a config key of Rag")):
        edited = committed.copy()
        OmegaConf.update(edited, key, value, force_add=True)
        params.write_text(OmegaConf.to_yaml(edited))
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_config([])


def test_a_type_error_at_composition_is_one_line_naming_the_key():
    proc = subprocess.run([sys.executable, "-m", "pipeline.train", "general", "lora.r=abc"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: invalid configuration: lora.r must be a positive "
                                                           "integer, got 'abc'")
    with pytest.raises(ConfigError, match=r"teacher\.base_url is not a config key of EmbeddedTeacher"):
        compose(["teacher=embedded", "teacher.base_url=http://localhost:8000/v1"])
    with pytest.raises(ConfigError, match=r"model/nope"):
        compose(["model=nope"])


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_with_either_teacher(experiment):
    """An experiment may set the embedded teacher's keys (teacher.dtype); the paper's recipe with a real OpenAI
    teacher (`-S experiment=paper -S teacher=openai`) must compose all the same."""
    for teacher in ("embedded", "openai"):
        cfg = compose([f"experiment={experiment}", f"teacher={teacher}"])
        validate(cfg)
        assert cfg.teacher.kind == teacher
