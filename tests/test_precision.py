"""Mixed precision and packing: `auto` resolves as documented on this machine, packed batches train like padded ones.

The CPU's own flags (/proc/cpuinfo) say what `auto` must pick, read independently of torch's checks; the packing
checks run the real collators on a tiny random Llama built here (tests/test_train.py), with sdpa and eager attention.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from sling.errors import ConfigError
from tests.test_train import records, tiny_model


def cpu_flags() -> set[str]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    return {flag for line in path.read_text().splitlines() if line.startswith("flags") for flag in line.split()[2:]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU rule; a GPU resolves by torch.cuda")
def test_auto_resolves_to_bf16_exactly_where_the_cpu_has_native_bf16():
    from sling.precision import decode_dtype, train_precision

    native = bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile"})
    assert train_precision("auto") == ("bf16" if native else "fp32")
    assert decode_dtype("auto") == ("bfloat16" if native else "float32")
    assert decode_dtype("auto", "teacher.dtype") == decode_dtype("auto")


def test_the_run_environment_names_the_cpu_versions_and_auto_precision_and_is_the_same_on_every_call(monkeypatch):
    import json

    import peft
    import transformers

    from sling.io import provenance
    from sling.precision import decode_dtype, train_precision
    from sling.environment import run_environment, summary

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-not-for-provenance")
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    env = run_environment()
    assert env["cpu"]["model"] and env["cpu"]["cores"] >= env["cpu"]["usable_cores"] >= 1
    if Path("/proc/cpuinfo").exists():
        flags = cpu_flags()
        assert set(env["cpu"]["flags"]) <= flags and ("avx2" in env["cpu"]["flags"]) == ("avx2" in flags)
    assert env["versions"] == {"python": env["versions"]["python"], "torch": torch.__version__,
                               "transformers": transformers.__version__, "peft": peft.__version__}
    assert env["precision_auto"] == {"train": train_precision("auto"), "decode": decode_dtype("auto")}
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["env"] == {"OMP_NUM_THREADS": str(torch.get_num_threads())}  # numerics variables only
    assert f"{env['torch_threads']} torch threads" in summary(env) and env["cpu"]["model"] in summary(env)
    # provenance carries it, byte for byte the same on a second call: no timestamp, host name or secret
    first, second = (json.dumps(provenance("stage", {"k": 1}), sort_keys=True) for _ in range(2))
    assert first == second and json.loads(first)["environment"] == env
    assert "sk-secret" not in first and "OPENAI" not in first
    host = socket.gethostname()
    assert len(host) < 6 or host not in first


def test_the_default_profile_computes_in_float32_and_the_real_run_presets_keep_auto():
    """README "Reproducibility": the default profile decodes and trains in float32, so its results do not depend on
    which bf16 kernels a CPU has; the real-run presets keep `auto` (their committed runs used it)."""
    from sling.config import compose

    default = compose([])
    assert (default.train.precision, default.teacher.dtype, default.rag.dtype) == ("fp32", "float32", "float32")
    for preset in ("paper", "paper_offline", "study"):
        cfg = compose([f"experiment={preset}"])
        assert (cfg.train.precision, cfg.teacher.dtype) == ("auto", "auto"), preset
        assert cfg.rag.dtype == ("bfloat16" if preset == "paper_offline" else "auto"), preset


def test_a_forced_setting_is_kept_and_fp16_training_on_a_cpu_is_refused(cfg_factory):
    from sling.config import validate
    from sling.precision import decode_dtype, train_precision

    assert train_precision("fp32") == "fp32"
    assert train_precision("bf16") == "bf16"
    assert decode_dtype("float32") == "float32" and decode_dtype("bfloat16") == "bfloat16"
    with pytest.raises(ConfigError, match="train.precision"):
        train_precision("half")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="train.precision=fp16 needs a GPU"):
            validate(cfg_factory("train.precision=fp16"))


def test_training_args_follow_the_resolved_precision(cfg_factory, tmp_path):
    from sling.precision import train_precision
    from sling.models.training import training_args

    cfg = cfg_factory("train.precision=auto")
    auto = training_args(cfg.train, cfg.seed, tmp_path, 2, False)
    assert auto.bf16 == (train_precision("auto") == "bf16") and not auto.fp16
    cfg = cfg_factory("train.precision=fp32")
    fp32 = training_args(cfg.train, cfg.seed, tmp_path, 2, False)
    assert not fp32.bf16 and not fp32.fp16


def tokenised(tok_dir: Path, loss_on: str = "response") -> list[dict]:
    from sling.models.loading import load_tokenizer
    from sling.models.training import tokenize

    rows = [{"prompt": r["prompt"], "response": " ".join([r["response"]] * (i + 1))}  # four lengths
            for i, r in enumerate(records()[:4])]
    return tokenize(rows, load_tokenizer(tok_dir), 64, loss_on)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_packed_batch_gives_the_loss_of_the_padded_batch(tmp_path, attention):
    from transformers import AutoModelForCausalLM

    from sling.models.loading import load_tokenizer
    from sling.models.training import (
        packing_collator,
        packing_keeps_rows_apart,
        padding_collator,
    )

    path = tiny_model(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention).eval()
    tok = load_tokenizer(path)
    rows = tokenised(path)
    assert len({len(r["input_ids"]) for r in rows}) > 1, "rows of one length would need no padding"
    padded, packed = padding_collator(tok)(rows), packing_collator()(rows)
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].numel() == sum(len(r["input_ids"]) for r in rows)  # no padding at all
    with torch.no_grad():  # use_cache=False, as in training
        out_padded = model(**padded, use_cache=False)
        out_packed = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                           labels=packed["labels"], use_cache=False)
    assert float(out_packed.loss) == pytest.approx(float(out_padded.loss), rel=1e-4)
    # Row by row, every real token's logits are those of the padded batch: no row sees another.
    start = 0
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        real = padded["attention_mask"][i].bool()
        assert torch.allclose(out_packed.logits[0, start:start + n], out_padded.logits[i][real], atol=1e-4)
        start += n
    assert packing_keeps_rows_apart(model, tok)


def test_response_only_labels_survive_packing(tmp_path):
    from sling.models.training import IGNORE, packing_collator

    path = tiny_model(tmp_path / "tiny")
    rows = tokenised(path)
    packed = packing_collator()(rows)["labels"][0].tolist()
    expected = []
    for r in rows:
        expected += [IGNORE] + r["labels"][1:]  # a row's first label is the separator (it is a prompt token anyway)
    assert packed == expected
    for r in rows:  # the prompt is masked and the response is not
        n_prompt = r["labels"].index(next(x for x in r["labels"] if x != IGNORE))
        assert n_prompt > 0 and all(x == IGNORE for x in r["labels"][:n_prompt])
        assert r["labels"][n_prompt:] == r["input_ids"][n_prompt:]
    whole = tokenised(path, "all")
    packed_all = packing_collator()(whole)["labels"][0].tolist()
    assert sum(x != IGNORE for x in packed_all) == sum(len(r["input_ids"]) - 1 for r in whole)


def test_packing_auto_pads_on_sdpa_and_on_packs_there(tmp_path, cfg_factory):
    from transformers import AutoModelForCausalLM

    from sling.models.loading import load_tokenizer
    from sling.models.training import resolve_packing

    path = tiny_model(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    tok = load_tokenizer(path)
    assert resolve_packing("auto", model, tok) is False
    assert resolve_packing("on", model, tok) is True
    assert resolve_packing("off", model, tok) is False


def test_the_train_stage_packs_and_learns(tmp_path, monkeypatch, cfg_factory):
    from sling.models.training import train
    from tests.test_train import config, dataset

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    base = tiny_model(tmp_path / "base")
    data = dataset(tmp_path / "data")
    res = train(config(cfg_factory, "train.packing=on", "train.general_max_steps=12", "train.max_eval_rows=1"),
                "general", out_dir=tmp_path / "adapter", checkpoint_dir=tmp_path / "ckpt", base_dir=base, data_dir=data)
    m = res.metrics
    assert m["packing"] is True and m["padding_share"] == 0.0
    assert m["eval_rows"] == 1 and m["eval_rows_available"] == 2
    assert m["train_loss"] < m["train_loss_first"]


@pytest.mark.skipif(not torch.cuda.is_available() and not __import__("importlib").import_module("sling.precision").cpu_native_bf16(),
                    reason="bf16 autocast is the auto choice only where bfloat16 is native")
def test_bf16_training_ends_within_2_percent_of_fp32_eval_loss(tmp_path, monkeypatch, cfg_factory):
    from sling.models.training import train
    from tests.test_train import config, dataset

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    base = tiny_model(tmp_path / "base")
    data = dataset(tmp_path / "data")
    losses = {}
    for precision in ("fp32", "bf16"):
        res = train(config(cfg_factory, f"train.precision={precision}", "train.general_max_steps=20"), "general",
                    out_dir=tmp_path / precision, checkpoint_dir=tmp_path / f"ckpt-{precision}", base_dir=base,
                    data_dir=data)
        assert res.metrics["precision"] == precision
        losses[precision] = res.metrics["eval_loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02), losses
