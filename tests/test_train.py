"""The training stage on tiny random models built here: did it learn, does the adapter reload, resume, QLoRA.

Models and tokenizers are made in the test (a 2-layer Llama like SmolLM2, a 2-layer Phi like phi-1.5, a word-level
tokenizer over the test's own vocabulary), so nothing needs the hub or the packaged snapshot; every run goes through
the real `sling.models.training.train` with Trainer, PEFT and, for 4-bit, bitsandbytes on the CPU.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sling.io import write_jsonl

COLOURS = {"sky": "blue", "grass": "green", "snow": "white", "coal": "black", "blood": "red", "sun": "yellow",
           "sea": "teal", "rose": "pink"}
EXTRA = ["###", "Instruction:", "Response:", "What", "colour", "is", "the", "?", "It", "."]
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]


def records() -> list[dict]:
    return [{"prompt": f"### Instruction: What colour is the {thing} ? ### Response:", "response": f"It is {colour} ."}
            for thing, colour in COLOURS.items()]


def save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = SPECIAL + EXTRA + sorted(set(COLOURS) | set(COLOURS.values()))
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(path)


def tiny_model(path: Path, arch: str = "llama") -> Path:
    """A randomly initialised 2-layer causal LM with the real module names of SmolLM2 (llama) or phi-1.5 (phi)."""
    from transformers import (
        AutoTokenizer,
        LlamaConfig,
        LlamaForCausalLM,
        PhiConfig,
        PhiForCausalLM,
    )

    save_tokenizer(path)
    vocab = len(AutoTokenizer.from_pretrained(path))
    torch.manual_seed(0)
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=128, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    if arch == "phi":
        model = PhiForCausalLM(PhiConfig(**common))
    else:
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **common))
    model.save_pretrained(path)
    return path


def dataset(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows or records()
    write_jsonl(path / "train.jsonl", rows)
    write_jsonl(path / "eval.jsonl", rows[:2])
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    return tmp_path


def config(cfg_factory, *overrides):
    return cfg_factory("train.lr=0.01", "train.warmup_steps=0", "train.batch_size=4", "train.general_max_steps=30",
                       "train.domain_max_steps=30", "train.eval_steps=10", "train.save_steps=10", "train.logging_steps=1",
                       "train.max_length=64", "lora.dropout=0.0", *overrides)


class Snapshot:
    """Trainer callback: LoRA weights before and after training, and the trained model's logits on `probe`."""

    def __init__(self, probe: torch.Tensor):
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                outer.before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

            def on_train_end(self, args, state, control, model=None, **kwargs):
                outer.after = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
                model.eval()
                with torch.no_grad():
                    outer.logits = model(input_ids=probe).logits
                model.train()

        self.callback = _Callback()


def probe_ids(base: Path) -> torch.Tensor:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    return tok("### Instruction: What colour is the sky ? ### Response: It is", return_tensors="pt")["input_ids"]


def test_tokenize_masks_the_prompt_by_default_and_not_for_loss_on_all(tmp_path):
    from transformers import AutoTokenizer

    from sling.models.training import IGNORE, tokenize

    save_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    row = records()[0]
    n_prompt = len(tok(row["prompt"], add_special_tokens=False)["input_ids"])
    response_only = tokenize([row], tok, 64, "response")[0]
    whole = tokenize([row], tok, 64, "all")[0]
    assert response_only["input_ids"] == whole["input_ids"]
    assert response_only["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert response_only["labels"][n_prompt:] == response_only["input_ids"][n_prompt:]
    assert response_only["input_ids"][-1] == tok.eos_token_id  # the model learns to stop
    assert whole["labels"] == whole["input_ids"]


def test_tokenize_counts_rows_whose_prompt_fills_max_length(tmp_path, caplog):
    from transformers import AutoTokenizer

    from sling.models.training import tokenize

    save_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    long = {"prompt": "What " * 40, "response": "It is blue ."}
    kept = tokenize([long, records()[0]], tok, 16, "response", source="x.jsonl")
    assert len(kept) == 1 and all(len(r["input_ids"]) <= 16 for r in kept)
    assert "skipped 1 of 2 rows" in caplog.text and "x.jsonl" in caplog.text
    with pytest.raises(ValueError, match="x.jsonl: row 1 lacks"):
        tokenize([{"text": "no prompt"}], tok, 16, "response", source="x.jsonl")


def test_collator_pads_to_the_longest_row_and_counts_real_tokens(tmp_path):
    from transformers import AutoTokenizer

    from sling.models.training import IGNORE, CountingCollator

    save_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    rows = [{"input_ids": [5] * n, "attention_mask": [1] * n, "labels": [5] * n} for n in (3, 10)]
    batch = CountingCollator(tok)(rows)
    assert batch["input_ids"].shape == (2, 16)  # longest row (10) rounded up to a multiple of 8, not max_length
    assert (batch["labels"][0, 3:] == IGNORE).all()
    collator = CountingCollator(tok)
    collator(rows)
    assert (collator.tokens, collator.padded) == (13, 32)


def test_training_learns_and_the_saved_adapter_reloads_with_the_same_logits(cfg_factory, workdir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from sling.models.training import train

    base = tiny_model(workdir / "base")
    data = dataset(workdir / "data")
    probe = probe_ids(base)
    snap = Snapshot(probe)
    # float32, so the trained model's logits (taken inside the Trainer, under its autocast) compare exactly
    res = train(config(cfg_factory, "train.precision=fp32"), "general", out_dir=workdir / "adapter",
                checkpoint_dir=workdir / "ckpt", base_dir=base, data_dir=data, extra_callbacks=[snap.callback])

    m, curves = res.metrics, res.curves
    assert m["steps"] == 30 and not m["resumed"]
    train_losses, eval_losses = ([r["loss"] for r in curves[name]] for name in ("train", "eval"))
    assert len(train_losses) == 30 and len(eval_losses) >= 3
    assert sum(train_losses[-5:]) < 0.85 * sum(train_losses[:5]), curves
    assert eval_losses[-1] < eval_losses[0], curves
    assert m["tokens_per_s"] > 0 and m["trainable_params"] > 0 and 0 <= m["padding_share"] < 1
    # Every LoRA matrix moved (B starts at zero, A at random values).
    assert snap.before and snap.before.keys() == snap.after.keys()
    unchanged = [n for n in snap.before if torch.equal(snap.before[n], snap.after[n])]
    assert not unchanged
    assert len(snap.before) == 2 * 2 * 4  # 2 layers x (A, B) x q/k/v/o

    adapter = Path(res.adapter_dir)
    for name in ("adapter_config.json", "adapter_model.safetensors", "sling_config.yaml", "sling_provenance.json"):
        assert (adapter / name).is_file(), name
    assert sorted(json.loads((adapter / "adapter_config.json").read_text())["target_modules"]) == [
        "k_proj", "o_proj", "q_proj", "v_proj"]
    assert not (workdir / "ckpt").exists()  # finished: nothing left to resume from
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=probe).logits, snap.logits)
        base_logits = AutoModelForCausalLM.from_pretrained(base)(input_ids=probe).logits
    assert not torch.allclose(base_logits, snap.logits, atol=1e-3)


def test_whole_prompt_loss_trains_too(cfg_factory, workdir):
    from sling.models.training import train

    base = tiny_model(workdir / "base")
    res = train(config(cfg_factory, "train.loss_on=all", "train.general_max_steps=10"), "general",
                out_dir=workdir / "adapter", checkpoint_dir=workdir / "ckpt", base_dir=base,
                data_dir=dataset(workdir / "data"))
    assert res.metrics["train_loss"] < res.metrics["train_loss_first"]


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_last_checkpoint(cfg_factory, workdir):
    from transformers import TrainerCallback

    from sling.models.training import train

    class StopAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 10:
                raise Interrupt  # as if the process were killed just after checkpoint-10 was written

    base, data = tiny_model(workdir / "base"), dataset(workdir / "data")
    cfg = config(cfg_factory, "train.general_max_steps=16", "train.save_steps=5", "train.eval_steps=8")
    paths = dict(out_dir=workdir / "adapter", checkpoint_dir=workdir / "ckpt", base_dir=base, data_dir=data)
    with pytest.raises(Interrupt):
        train(cfg, "general", extra_callbacks=[StopAfterSave()], **paths)
    assert (workdir / "ckpt" / "checkpoint-10").is_dir() and not (workdir / "adapter").exists()

    res = train(cfg, "general", **paths)
    m = res.metrics
    assert m["resumed"] and m["resumed_from_step"] == 10 and m["steps"] == 16
    steps = [r["step"] for r in res.curves["train"]]
    assert steps[0] == 1 and steps[-1] == 16  # the curve spans the whole run, not only the resumed part
    assert (Path(res.adapter_dir) / "adapter_model.safetensors").is_file()


def test_checkpoints_of_another_config_are_not_resumed(cfg_factory, workdir):
    from transformers import TrainerCallback

    from sling.models.training import train

    class StopAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Interrupt

    base, data = tiny_model(workdir / "base"), dataset(workdir / "data")
    paths = dict(out_dir=workdir / "adapter", checkpoint_dir=workdir / "ckpt", base_dir=base, data_dir=data)
    with pytest.raises(Interrupt):
        train(config(cfg_factory, "train.general_max_steps=8", "train.save_steps=4"), "general",
              extra_callbacks=[StopAfterSave()], **paths)
    res = train(config(cfg_factory, "train.general_max_steps=8", "train.save_steps=4", "train.lr=0.005"), "general",
                **paths)
    assert not res.metrics["resumed"] and res.metrics["steps"] == 8


def test_domain_adapter_stacks_on_the_merged_general_adapter_and_exports_a_merged_model(cfg_factory, workdir):
    from transformers import AutoModelForCausalLM

    from sling.models.loading import load_student
    from sling.models.training import train

    base, data = tiny_model(workdir / "base"), dataset(workdir / "data")
    cfg = config(cfg_factory, "train.general_max_steps=6", "train.domain_max_steps=6", "train.merge_export=true")
    dirs = {"general": str(workdir / "general"), "domain": str(workdir / "domain")}
    train(cfg, "general", out_dir=dirs["general"], checkpoint_dir=workdir / "c1", base_dir=base, data_dir=data,
          merged_dir=workdir / "merged_general")
    res = train(cfg, "domain", out_dir=dirs["domain"], checkpoint_dir=workdir / "c2", base_dir=base, data_dir=data,
                adapter_dirs=dirs, merged_dir=workdir / "merged_domain")
    prov = json.loads((Path(dirs["domain"]) / "sling_provenance.json").read_text())
    assert prov["config"]["stacked_on"] == ["general"] and "adapter_general" in prov["inputs"]

    probe = probe_ids(base)
    merged = AutoModelForCausalLM.from_pretrained(res.merged_dir).eval()
    with torch.no_grad():
        variants = {v: load_student(config(cfg_factory).model, v, dirs, base_dir=base)(input_ids=probe).logits
                    for v in ("base", "general", "domain")}
        torch.testing.assert_close(merged(input_ids=probe).logits, variants["domain"])
    assert not torch.allclose(variants["general"], variants["domain"], atol=1e-4)
    assert not torch.allclose(variants["base"], variants["general"], atol=1e-4)


def test_missing_data_names_the_file_and_the_stage_to_run(cfg_factory, workdir):
    from sling.models.training import train

    base = tiny_model(workdir / "base")
    with pytest.raises(FileNotFoundError, match=r"train.jsonl is missing: run `dvc repro build_dataset`"):
        train(config(cfg_factory), "domain", base_dir=base, data_dir=workdir / "nowhere",
              adapter_dirs={"general": str(workdir / "general")})


def test_phi_gets_lora_on_its_attention_projections_and_trains_in_4bit(cfg_factory, workdir):
    import bitsandbytes as bnb
    from transformers import TrainerCallback

    from sling.models.loading import load_base
    from sling.models.training import build_model, train

    base, data = tiny_model(workdir / "base", arch="phi"), dataset(workdir / "data")
    cfg = config(cfg_factory, "model=phi-1_5", "model.quantization=4bit", "model.dtype=float32",
                 "train.general_max_steps=4", "train.eval_steps=2", "train.save_steps=2")
    assert list(cfg.model.target_modules) == ["q_proj", "k_proj", "v_proj", "dense"]
    assert isinstance(load_base(cfg.model, base, quantize=True).model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)

    model = build_model(cfg.model, cfg.lora, "general", base)
    attn = model.base_model.model.model.layers[0].self_attn
    for name in ("q_proj", "k_proj", "v_proj", "dense"):
        layer = getattr(attn, name)
        assert hasattr(layer, "lora_A"), name
        assert isinstance(layer.base_layer, bnb.nn.Linear4bit), name
    mlp = model.base_model.model.model.layers[0].mlp
    assert not hasattr(mlp.fc1, "lora_A")
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)

    seen = {}

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["4bit"] = isinstance(model.base_model.model.model.layers[1].self_attn.dense.base_layer, bnb.nn.Linear4bit)
            seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}

        def on_train_end(self, args, state, control, model=None, **kwargs):
            seen["after"] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}

    res = train(cfg, "general", out_dir=workdir / "adapter", checkpoint_dir=workdir / "ckpt", base_dir=base,
                data_dir=data, extra_callbacks=[Record()])
    assert seen["4bit"] and res.metrics["steps"] == 4
    assert all(not torch.equal(seen["before"][n], seen["after"][n]) for n in seen["before"])
    cfg_json = json.loads((workdir / "adapter" / "adapter_config.json").read_text())
    assert sorted(cfg_json["target_modules"]) == ["dense", "k_proj", "q_proj", "v_proj"]


def test_the_stage_entry_point_writes_curve_metrics_and_mlflow_steps(workdir):
    """`python -m pipeline.train general` as DVC runs it, on the stage's own paths under SLING_WORKDIR."""
    import mlflow

    from pipeline.train import main

    tiny_model(workdir / "models" / "base")
    dataset(workdir / "data" / "datasets" / "general")
    main(["general", "train.lr=0.01", "train.general_max_steps=6", "train.eval_steps=3", "train.save_steps=3",
          "train.logging_steps=1", "train.max_length=64"])
    curves = {name: (workdir / "plots" / "loss" / "general" / f"{name}.csv").read_text().splitlines()
              for name in ("train", "eval")}
    assert curves["train"][0] == "step,loss" and [r.split(",")[0] for r in curves["train"][1:]] == list("123456")
    assert [r.split(",")[0] for r in curves["eval"][1:]] == ["3", "6"]  # eval loss only where it was measured
    assert all(float(r.split(",")[1]) > 0 for c in curves.values() for r in c[1:])
    metrics = json.loads((workdir / "metrics" / "train_general.json").read_text())
    assert metrics["steps"] == 6 and {"train_loss", "eval_loss", "tokens_per_s", "peak_memory_mb", "trainable_params",
                                      "wall_time_s"} <= metrics.keys()
    assert (workdir / "models" / "adapters" / "general" / "adapter_model.safetensors").is_file()
    run = mlflow.search_runs(experiment_names=["sling"], output_format="list")[0]
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "general.loss")
    assert sorted(h.step for h in history) == [1, 2, 3, 4, 5, 6]
    assert run.data.params["lora.r"] == "16" and "general.final.eval_loss" in run.data.metrics


PAPER_STATES = Path(__file__).resolve().parent.parent.parent / "shared" / "seed" / "paper_training"


@pytest.mark.skipif(not PAPER_STATES.is_dir(), reason="the paper's trainer states (../shared/seed) are not present")
@pytest.mark.parametrize("stage, state_file", [("general", "phipaca_trainer_state.json"),
                                               ("domain", "saiphipaca_trainer_state.json")])
def test_paper_profile_follows_the_papers_learning_rates(cfg_factory, tmp_path, stage, state_file):
    """experiment=paper stops early on a planned 20-epoch cosine decay, as the paper's runs did."""
    from torch.optim import SGD
    from transformers import get_scheduler

    from sling.models.training import training_args

    cfg = cfg_factory("experiment=paper")
    t = cfg.train
    args = training_args(cfg.train, cfg.seed, tmp_path, t[f"{stage}_max_steps"], True, schedule_steps=t[f"{stage}_schedule_steps"],
                         use_cpu=True, fp16=False)
    state = json.loads((PAPER_STATES / state_file).read_text())
    assert state["max_steps"] == t[f"{stage}_schedule_steps"] and state["global_step"] == t[f"{stage}_max_steps"]
    opt = SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    sched = get_scheduler(args.lr_scheduler_type, opt, args.warmup_steps, args.max_steps,
                          scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    lrs = []
    for _ in range(args.max_steps + 1):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    logged = [(h["step"], h["learning_rate"]) for h in state["log_history"] if "learning_rate" in h]
    assert logged
    for step, lr in logged:  # the Trainer logs the rate after `step` optimizer steps
        assert lrs[step] == pytest.approx(lr, rel=1e-3), step


def test_a_schedule_horizon_shorter_than_the_run_is_rejected(cfg_factory):
    from sling.config import validate
    from sling.errors import ConfigError

    with pytest.raises(ConfigError, match="train.general_schedule_steps"):
        validate(cfg_factory("train.general_schedule_steps=3"))
    with pytest.raises(ConfigError, match="train.domain_schedule_steps"):
        validate(cfg_factory("train.domain_schedule_steps=100", "train.scheduler=linear"))
