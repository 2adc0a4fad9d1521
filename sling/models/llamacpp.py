"""llama.cpp as a CPU decoding engine: a student written as GGUF (sling.models.export.write_gguf) and decoded by
llama-cpp-python, one prompt at a time, with the same token ids, greedy choice and repetition penalty as
sling.models.decoding.generate.

    gguf = student_gguf(student, tokenizer, "f16", out_dir, template, tokenizer_pre="smollm", name="base")
    rows = generate(open_gguf(gguf, n_ctx=2048), tokenizer, prompts, max_new_tokens=150, repetition_penalty=1.15)

llama-cpp-python is an optional extra: it builds from source with the machine's compiler (`scripts/install.sh
--llamacpp`, a wheel built once and kept in ~/.cache/sling/wheels). Without it, `require()` names that command.
bench/bench_answer.py measures it beside the batched transformers path.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from sling.errors import ConfigError

INSTALL = "bash scripts/install.sh --llamacpp"


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def require(use: str) -> None:
    """An error naming the install command when llama-cpp-python is not installed."""
    if not available():
        raise ConfigError(f"{use} needs llama-cpp-python, an optional extra built from source: run `{INSTALL}` "
                          "(about 5 minutes on 2 cores, once; the wheel is cached)")


def open_gguf(path: str | Path, n_ctx: int, threads: int | None = None):
    """A llama.cpp model over the GGUF file at `path`; the repetition penalty sees the whole context, as
    transformers' does (llama.cpp's default looks back 64 tokens)."""
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(512, n_ctx), last_n_tokens_size=n_ctx,
                 n_threads=threads or os.cpu_count() or 1, seed=0, verbose=False)


def student_gguf(student, tokenizer, kind: str, out_dir: Path, template: str, tokenizer_pre: str, name: str) -> Path:
    """`student` (a loaded, merged causal LM) written as one GGUF file of `kind` in `out_dir`, through the merged
    safetensors form, as the export stage writes its forms (sling.models.export.write_forms)."""
    from sling.models.export import save_merged, write_gguf

    out = out_dir / f"{name}.{kind}.gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        merged = Path(tmp) / "merged"
        save_merged(student, tokenizer, template, merged)
        partial = Path(tmp) / out.name
        write_gguf(merged, partial, kind, template, tokenizer_pre, name)
        os.replace(partial, out)
    return out


def generate(llm, tokenizer, prompts: list[str], *, max_new_tokens: int, repetition_penalty: float = 1.0,
             desc: str = "decode") -> list[dict]:
    """Greedy answers to `prompts`, in input order, as sling.models.decoding.generate returns them (answer text,
    prompt and answer token counts, wall time). The prompts are tokenized by `tokenizer` (the ids the transformers
    path decodes from); each step takes llama.cpp's next-token logits and chooses as transformers does: the
    repetition penalty over every token so far, the prompt's included (llama.cpp's own sampler penalises only what it
    generated), then the most likely token; the answer ends at an end-of-generation token."""
    import llama_cpp
    import numpy as np

    vocab = llm.n_vocab()
    vocab_ptr = llama_cpp.llama_model_get_vocab(llm.model)
    rows = []
    for prompt in tqdm(prompts, desc=desc, unit="prompt", leave=False):
        ids = tokenizer(prompt)["input_ids"]
        t0 = time.perf_counter()
        llm.reset()
        llm.eval(ids)
        seen = np.zeros(vocab, dtype=bool)
        seen[ids] = True
        out: list[int] = []
        for _ in range(max_new_tokens):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,)).copy()
            if repetition_penalty != 1.0:
                hit = logits[seen]
                logits[seen] = np.where(hit < 0, hit * repetition_penalty, hit / repetition_penalty)
            token = int(logits.argmax())
            if llama_cpp.llama_vocab_is_eog(vocab_ptr, token):
                break
            out.append(token)
            seen[token] = True
            llm.eval([token])
        elapsed = time.perf_counter() - t0
        rows.append({"answer": tokenizer.decode(out, skip_special_tokens=True).strip(), "prompt_tokens": len(ids),
                     "answer_tokens": len(out), "latency_s": round(elapsed, 4), "batch_latency_s": round(elapsed, 4)})
    return rows
