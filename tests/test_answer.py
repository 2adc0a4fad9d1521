"""The answer stage's pieces on a tiny random Llama built in the test: batched greedy decoding, with either
prefill and the in-place cache, returns transformers' own one-at-a-time answers in the input order; the student
is cast to `rag.dtype`, prompts carry the retrieved chunks, and the paper's reference column is checked before use."""
from __future__ import annotations

import pytest

from tests.test_index import tiny_tokenizer

WORDS = "the adapter rank decides how many parameters are trained qdrant stores vectors bakers feed starter daily".split()


@pytest.fixture
def student(tmp_path, monkeypatch):
    """A 2-layer random Llama and its word-level tokenizer, saved as models/base in a tmp work root."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    monkeypatch.setenv("SLING_WORKDIR", str(tmp_path))
    tok = tiny_tokenizer([" ".join(WORDS)])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    base = tmp_path / "models" / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    return model.eval(), tok


@pytest.fixture
def cfg():
    from sling.config import compose

    return compose(["rag.max_new_tokens=6", "rag.repetition_penalty=1.15"])


def hf_alone(model, tok, prompts: list[str], max_new_tokens: int = 6) -> list[str]:
    """transformers' own generate, its own cache, one prompt at a time: what the answer stage must reproduce."""
    import torch

    out = []
    with torch.inference_mode():
        for p in prompts:
            enc = tok([p], return_tensors="pt")
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=1.15,
                                 pad_token_id=tok.pad_token_id)
            out.append(tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return out


PROMPTS = [" ".join(WORDS[i:i + n]) for i, n in [(0, 9), (3, 2), (5, 12), (1, 4), (2, 7), (4, 1)]]  # mixed lengths


@pytest.mark.parametrize("prefill", ["per_prompt", "batched"])
def test_batched_answers_equal_one_at_a_time_in_input_order(student, cfg, prefill):
    from sling.retrieval.answering import generate

    model, tok = student
    cfg.rag.batch_size, cfg.rag.prefill = 4, prefill  # 6 prompts: batches of 3 and 3
    batched = generate(model, tok, PROMPTS, cfg.rag)
    assert [r["answer"] for r in batched] == hf_alone(model, tok, PROMPTS)
    assert [r["prompt_tokens"] for r in batched] == [len(p.split()) for p in PROMPTS]
    assert [r["batch_latency_s"] for r in batched].count(batched[0]["batch_latency_s"]) == 3
    assert all(0 < r["answer_tokens"] <= 6 and r["latency_s"] > 0 for r in batched)
    assert any(r["answer"] for r in batched)


def test_buffered_cache_grows_past_its_capacity(student):
    import torch

    from sling.models.decoding import kv_cache

    model, tok = student
    enc = tok([PROMPTS[2]], return_tensors="pt")
    with torch.inference_mode():
        cache = kv_cache(model, capacity=3)  # far less than prompt + answer: must reallocate, keeping what it holds
        ids = model.generate(**enc, past_key_values=cache, max_new_tokens=6, do_sample=False, repetition_penalty=1.15,
                             pad_token_id=tok.pad_token_id)
    assert tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() == hf_alone(model, tok, PROMPTS[2:3])[0]
    assert cache.get_seq_length() == ids.shape[1] - 1


def test_student_is_cast_to_rag_dtype(student, cfg):
    import torch

    from sling.retrieval.answering import load_answerer

    cfg.rag.dtype = "bfloat16"
    assert next(load_answerer(cfg.model, cfg.rag, "base").parameters()).dtype == torch.bfloat16
    cfg.rag.dtype = "float32"
    assert next(load_answerer(cfg.model, cfg.rag, "base").parameters()).dtype == torch.float32


def test_prompt_holds_question_and_every_retrieved_chunk(cfg):
    from sling.retrieval.answering import build_prompt

    prompt = build_prompt(cfg.rag, "How often?", [{"text": "Feed it daily."}, {"text": "Bake when doubled."}])
    assert "Feed it daily.\n\nBake when doubled." in prompt and "### Input: How often?" in prompt
    assert prompt.endswith("### Response:\n")


def test_reference_column_must_be_filled(cfg):
    from sling.retrieval.answering import reference_answers

    cfg.data.reference = "column"
    rows = reference_answers(cfg.data, cfg.teacher, cfg.model,
                             [{"id": "q1", "reference": " An answer. ", "reference_source": "hand-written"}], ["p"])
    assert rows[0]["answer"] == "An answer." and rows[0]["reference_source"] == "hand-written"
    with pytest.raises(ValueError, match=r"\['q2'\] have no reference answer"):
        reference_answers(cfg.data, cfg.teacher, cfg.model,
                          [{"id": "q1", "reference": "x"}, {"id": "q2", "reference": " "}], ["p", "p"])


def test_invalid_answer_dtype_is_named(cfg_factory):
    from sling.config import validate
    from sling.errors import ConfigError

    with pytest.raises(ConfigError, match="rag.dtype"):
        validate(cfg_factory("rag.dtype=int8"))
    with pytest.raises(ConfigError, match="rag.chunking"):
        validate(cfg_factory("rag.chunking=sentences"))
