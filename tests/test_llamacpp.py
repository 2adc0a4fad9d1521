"""llama.cpp as the answering engine (rag.engine=llamacpp, sling.models.llamacpp): with the student written as float32
GGUF it must answer exactly as the transformers path does, in the answer stage and token for token.

The tests marked `llamacpp` need llama-cpp-python, an optional extra built from source (`bash scripts/install.sh
--llamacpp`, about 5 minutes on 2 cores, once); they skip without it, and CI builds it and runs them
(`.venv/bin/python -m pytest -m llamacpp`). Without it, choosing the engine is one line naming that command.
"""
from __future__ import annotations

import sys

import pytest

from sling.models import llamacpp
from tests.test_index import overrides
from tests.test_serving import SETTINGS, run_root, stage_rows  # noqa: F401  (run_root: the tiny run, a fixture)

PROMPTS = ["### Instruction: Use the context to answer.\n\nLoRA trains two small matrices per layer and keeps the "
           "base weights frozen.\n\n### Input: What does LoRA train?\n### Response:\n",
           "### Instruction: Answer the users question.\n\n### Input: Where does an embedded Qdrant keep its "
           "collections?\n### Response:\n"]


@pytest.mark.llamacpp
@pytest.mark.skipif(not llamacpp.available(), reason=f"llama-cpp-python is not installed: {llamacpp.INSTALL}")
def test_float32_gguf_decodes_token_for_token_as_transformers(base_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sling.models.decoding import generate
    from sling.models.export import chat_template

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    want = generate(model, tokenizer, PROMPTS, max_new_tokens=40, repetition_penalty=1.15, batch_size=2)
    path = llamacpp.student_gguf(model, tokenizer, "f32", tmp_path, chat_template("{context}{question}", "{question}"),
                                 "default", "base")
    got = llamacpp.generate(llamacpp.open_gguf(path, n_ctx=1024), tokenizer, PROMPTS, max_new_tokens=40,
                            repetition_penalty=1.15)
    assert all(w["answer"] for w in want), want
    assert [g["answer"] for g in got] == [w["answer"] for w in want]
    assert [g["answer_tokens"] for g in got] == [w["answer_tokens"] for w in want]
    assert [g["prompt_tokens"] for g in got] == [w["prompt_tokens"] for w in want]


@pytest.mark.llamacpp
@pytest.mark.integration
@pytest.mark.slow  # a tiny run of its own (adapters trained, the answer stage twice): CI's `-m llamacpp` step runs it
@pytest.mark.skipif(not llamacpp.available(), reason=f"llama-cpp-python is not installed: {llamacpp.INSTALL}")
def test_the_answer_stage_on_llamacpp_gives_the_transformers_engines_answers(run_root, monkeypatch):  # noqa: F811
    """The tiny run's answer stage again with rag.engine=llamacpp (each variant merged and written as float32 GGUF):
    every variant's answers, RAG and closed-book, are the ones the transformers engine gave."""
    from pipeline.answer import main as answer

    before = {(v, t): stage_rows(run_root, v, t) for v in ("base", "general", "domain") for t in ("single", "joint")}
    assert before[("domain", "single")] != before[("base", "single")]
    monkeypatch.setenv("SLING_WORKDIR", str(run_root))
    try:
        answer(["students", *overrides(run_root, *SETTINGS, "rag.engine=llamacpp", "rag.gguf_type=f32")])
        for (variant, task), rows in before.items():
            got = stage_rows(run_root, variant, task)
            assert [r["answer"] for r in got] == [r["answer"] for r in rows], (variant, task)
            assert {r["engine"] for r in got} == {"llamacpp"}
    finally:  # the module's other tests read the transformers engine's answers
        answer(["students", *overrides(run_root, *SETTINGS)])


def test_choosing_llamacpp_without_it_installed_is_one_line_naming_the_install(monkeypatch):
    from sling.config import compose
    from sling.errors import ConfigError
    from sling.retrieval.answering import load_answerer

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as on a machine without the extra
    cfg = compose(["rag.engine=llamacpp"])
    with pytest.raises(ConfigError, match=r"rag.engine=llamacpp needs llama-cpp-python.*bash scripts/install.sh "
                                          r"--llamacpp"):
        load_answerer(cfg.model, cfg.rag, "base")


@pytest.mark.llamacpp
@pytest.mark.skipif(not llamacpp.available(), reason=f"llama-cpp-python is not installed: {llamacpp.INSTALL}")
def test_an_exported_gguf_answers_in_llamacpp_from_its_own_template_and_tokenizer(base_dir, tmp_path):
    """The export stage's GGUF as llama.cpp itself reads it, with no help from us: its own tokenizer (the vocabulary,
    merges and pre-tokenizer written into the file), its own chat template rendering [system: context, user: question]
    and its own greedy sampler. The prompt's tokens and the answers, RAG and closed-book, are the transformers
    engine's (the repetition penalty off: llama.cpp's looks at the answer only, transformers' at the prompt too)."""
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sling.config import compose
    from sling.models.decoding import generate
    from sling.models.export import chat_template, save_merged, write_gguf

    cfg = compose([])
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    template = chat_template(cfg.rag.prompt_template, cfg.rag.closed_book_template)
    save_merged(model, tokenizer, template, tmp_path / "merged")
    write_gguf(tmp_path / "merged", tmp_path / "base.gguf", "f32", template, cfg.export.tokenizer_pre, "base")
    llm = Llama(model_path=str(tmp_path / "base.gguf"), n_ctx=1024, n_threads=2, verbose=False)
    context = "LoRA trains two small matrices per layer. The base weights stay frozen, so an adapter is a few megabytes."
    question = "What does LoRA train, and why is an adapter small?"
    prompts = [cfg.rag.prompt_template.format(context=context, question=question),
               cfg.rag.closed_book_template.format(question=question)]
    for prompt in prompts:
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == tokenizer(prompt)["input_ids"]
    want = [r["answer"] for r in generate(model, tokenizer, prompts, max_new_tokens=40, batch_size=2)]
    assert all(want), want
    got = [llm.create_chat_completion(messages=messages, temperature=0.0, top_k=1, max_tokens=40, repeat_penalty=1.0,
                                      seed=0)["choices"][0]["message"]["content"].strip()
           for messages in ([{"role": "system", "content": context}, {"role": "user", "content": question}],
                            [{"role": "user", "content": question}])]
    assert got == want
