"""Exporting a tuned student for other runtimes, and the gate that proves each export answers like its adapter.

The forms: the variant's adapters merged into the base as safetensors (`merged/`, for vLLM and transformers) and GGUF
files (`export.gguf_types`: f16 and q8_0 by default, q4_1 and q4_0 on request) for llama.cpp and Ollama, each
carrying a chat template that renders a system message (the retrieved context) and a user message (the question)
into the exact RAG prompt the answer stage sends (`rag.prompt_template`; `rag.closed_book_template` without a system
message), plus an Ollama `Modelfile` with the same prompt and the answer stage's decoding settings.

The GGUF files are written here with the `gguf` package (GGUFWriter, gguf.quants), as llama.cpp's
convert_hf_to_gguf.py does for a Llama model: its tensor names, the rotary permutation of q and k, 1-D norms kept
float32, the GPT-2 BPE tokenizer with its merges and special tokens. Hand-written because that converter is a script
of the llama.cpp repository, not a package on PyPI.

No Q4_K_M: gguf.quants (0.19) dequantizes Q4_K and Q6_K but cannot quantize them (NotImplementedError), and llama.cpp's
`llama-quantize`, which can, is no package on PyPI. The nearest it writes is Q4_1 (4-bit weights with a scale and a
minimum per block of 32, as Q4_K's sub-blocks have; 5.0 bits a weight beside Q4_K_M's about 4.9); Q4_0 (scale only,
4.5 bits) too. Under either, the (tied) output matrix stays Q8_0, as llama.cpp's quantize keeps it wider (Q6_K).
The 135M student fails the gate at 4 bits (docs/model.md gives the figures).

The gate (`compare`, `check`): for probe prompts (the answer stage's own prompts, with its retrieved passages) and
the adapter's answer to each, every form is run teacher-forced on its own chat template's rendering of the same
messages; at each answer position the next-token distribution is compared with the adapter's (base with the
variant's earlier adapters merged, the last one applied unmerged by PEFT): mean KL divergence and top-1 agreement, as
llama.cpp's `perplexity --kl-divergence` reports them. Then every form answers the held-out benchmark questions the
adapter answered, and the paired difference of the headline metric with its interval is its third figure
(`Difference`, measured by sling.scoring.exported). The GGUF forms are read back through transformers' GGUF loader
(dequantized to float32), not llama.cpp itself. Entry point: `pipeline/export.py`.
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from sling.config import resolve_path
from sling.errors import UserError
from sling.models.loading import ADAPTER_DIRS, VARIANTS, load_base, merge_adapters
from sling.schema import Export, Model, Rag

log = logging.getLogger("export")

FOUR_BIT = ("q4_1", "q4_0")
OUTPUT_TENSORS = ("output.weight", "token_embd.weight")  # SmolLM2 ties the output matrix to the token embedding


class ExportGateError(UserError):
    """An exported form does not answer like its adapter: the message names the form and its figure."""


@dataclass(frozen=True)
class Difference:
    """One form's answers to a task's held-out benchmark questions minus the adapter's, per question, on the headline
    metric, with its bootstrap interval (sling.scoring.exported measures it)."""

    task: str
    mean: float
    ci: tuple[float, float]
    questions: int
    metric: str = "rescaled"   # rescaled cosine, the report's headline


@dataclass(frozen=True)
class Figures:
    """One form against the adapter on the probes, and on the held-out benchmark where it was answered."""

    kl: float          # mean KL(adapter || form) of the next-token distributions, nats per position
    top1: float        # share of positions where both put the same token first
    positions: int
    probes: int
    benchmark: tuple[Difference, ...] = ()


def chat_template(prompt_template: str, closed_book_template: str) -> str:
    """A Jinja chat template rendering [system: context, user: question] as `prompt_template` fills them, and a
    conversation without a system message as `closed_book_template` (the last user message is the question)."""

    def jinja(template: str) -> str:
        parts = re.split(r"(\{context\}|\{question\})", template)
        return "".join("{{ ns.context }}" if part == "{context}" else "{{ ns.question }}" if part == "{question}"
                       else "{{ " + json.dumps(part.replace("{{", "{").replace("}}", "}")) + " }}"
                       for part in parts if part)

    return ("{%- set ns = namespace(context='', question='') -%}"
            "{%- for message in messages -%}"
            "{%- if message['role'] == 'system' -%}{%- set ns.context = message['content'] -%}"
            "{%- elif message['role'] == 'user' -%}{%- set ns.question = message['content'] -%}{%- endif -%}"
            "{%- endfor -%}"
            "{%- if ns.context -%}" + jinja(prompt_template) + "{%- else -%}" + jinja(closed_book_template)
            + "{%- endif -%}")


def modelfile(gguf_name: str, rag: Rag) -> str:
    """An Ollama Modelfile for `gguf_name` beside it: the RAG prompt as a Go template (.System: the context,
    .Prompt: the question) and the answer stage's greedy decoding."""

    def go(template: str) -> str:
        return template.replace("{context}", "{{ .System }}").replace("{question}", "{{ .Prompt }}")

    text = ("{{ if .System }}" + go(rag.prompt_template) + "{{ else }}" + go(rag.closed_book_template) + "{{ end }}")
    return (f"FROM ./{gguf_name}\n"
            f"TEMPLATE \"\"\"{text}\"\"\"\n"
            "PARAMETER temperature 0\n"
            f"PARAMETER repeat_penalty {rag.repetition_penalty}\n"
            f"PARAMETER num_predict {rag.max_new_tokens}\n"
            "PARAMETER stop \"<|im_end|>\"\n"
            "PARAMETER stop \"<|endoftext|>\"\n")


def merged_student(model: Model, variant: str, adapter_dirs: dict[str, str] | None = None):
    """The base with every adapter of `variant` merged in, in float32 (the merged form's weights)."""
    import torch

    merged = merge_adapters(load_base(model).to(torch.float32), VARIANTS[variant], adapter_dirs)
    return merged.eval()


def reference_student(model: Model, variant: str, adapter_dirs: dict[str, str] | None = None):
    """The adapter as PEFT runs it: the earlier adapters merged (as training stacked them), the last one unmerged."""
    import torch
    from peft import PeftModel

    names = VARIANTS[variant]
    reference = merge_adapters(load_base(model).to(torch.float32), names[:-1], adapter_dirs)
    if names:
        path = resolve_path({**ADAPTER_DIRS, **(adapter_dirs or {})}[names[-1]])
        reference = PeftModel.from_pretrained(reference, str(path))
    return reference.eval()


def save_merged(model, tokenizer, template: str, out: Path) -> None:
    """The merged form: safetensors and the tokenizer, whose chat template is the RAG prompt's."""
    tokenizer.chat_template = template
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def permute(weights, n_head: int):
    """llama.cpp's rotary layout for q and k (convert_hf_to_gguf.py LlamaModel.permute); transformers' GGUF loader
    reverses it."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(merged_dir: Path, out: Path, kind: str, template: str, tokenizer_pre: str, name: str) -> None:
    """The merged model in `merged_dir` as one GGUF file of `kind` (sling.schema.GGUF_TYPES) with its tokenizer and
    `template`."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise UserError(f"export writes GGUF for Llama-architecture students only; {merged_dir} holds "
                        f"{config.get('model_type')!r} (model=...): use the merged safetensors form")
    n_head, n_kv, n_layer = config["num_attention_heads"], config["num_key_value_heads"], config["num_hidden_layers"]
    qtype = gguf.GGMLQuantizationType[kind.upper()]
    file_type = gguf.LlamaFileType.ALL_F32 if kind == "f32" else gguf.LlamaFileType[f"MOSTLY_{kind.upper()}"]
    writer = gguf.GGUFWriter(str(out), arch="llama")
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(float((config.get("rope_parameters") or {}).get("rope_theta")
                                    or config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(config.get("head_dim") or config["hidden_size"] // n_head)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types = vocabulary(merged_dir, config["vocab_size"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tokenizer_pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(merged_dir, load_merges=True, n_vocab=len(tokens))
    special.chat_template = template
    special.add_to_gguf(writer, quiet=True)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    weights = load_file(str(merged_dir / "model.safetensors"))
    for hf_name, data in weights.items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UserError(f"export cannot name tensor {hf_name} of {merged_dir} in GGUF (not a Llama tensor)")
        data = data.astype(np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = permute(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute(data, n_kv)
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:  # norms stay float32, as llama.cpp writes them
            writer.add_tensor(gguf_name, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        else:
            # the (tied) output matrix stays at 8 bits under a 4-bit type, as llama.cpp's quantize keeps it wider
            # (at Q6_K, which gguf.quants cannot write)
            kept = gguf.GGMLQuantizationType.Q8_0 if kind in FOUR_BIT and gguf_name in OUTPUT_TENSORS else qtype
            writer.add_tensor(gguf_name, gguf.quants.quantize(data, kept), raw_dtype=kept)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def vocabulary(model_dir: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """The BPE vocabulary in id order with llama.cpp's token types (control for special added tokens)."""
    import gguf

    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if spec["model"]["type"] != "BPE":
        raise UserError(f"export writes GPT-2 BPE tokenizers to GGUF only; {model_dir}/tokenizer.json is "
                        f"{spec['model']['type']}")
    by_id = {i: t for t, i in spec["model"]["vocab"].items()}
    kinds = {}
    for added in spec.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        kinds[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    types = [kinds.get(i, gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED) for i in range(vocab_size)]
    return tokens, [int(t) for t in types]


def load_form(path: Path, gguf_file: str | None = None):
    """A form read back as a runtime other than ours would read it: transformers' loaders (the GGUF one dequantizes)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kwargs)
    return model.eval(), tokenizer


@dataclass(frozen=True)
class Probe:
    """An answer stage prompt as messages, its text as the adapter read it, and the adapter's answer."""

    context: str
    question: str
    prompt: str
    answer: str


def probes(rows: list[dict], prompt_template: str, limit: int) -> list[Probe]:
    """The first `limit` answer stage rows (results/students) with an answer, as probes: the context is the
    retrieved chunks as the prompt joins them (sling.retrieval.answering.build_prompt)."""
    out = []
    for r in rows:
        if not r.get("answer") or r.get("closed_book"):
            continue
        context = "\n\n".join(c["text"] for c in r["retrieved"])
        out.append(Probe(context, r["question"], prompt_template.format(context=context, question=r["question"]),
                         r["answer"]))
        if len(out) == limit:
            break
    return out


def answer_positions(tokenizer, prompt: str, answer: str, max_tokens: int):
    """Token ids of prompt + answer (truncated to `max_tokens` answer tokens) and the answer's first index."""
    import torch

    head = tokenizer(prompt, return_tensors="pt")["input_ids"][0]
    tail = tokenizer(answer, add_special_tokens=False, return_tensors="pt")["input_ids"][0][:max_tokens]
    return torch.cat([head, tail]), len(head)


def next_token_logprobs(model, ids, start: int):
    """Log-probabilities of the next token at each answer position (predicting ids[start:])."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=ids[None]).logits[0, start - 1:-1].float()
    return torch.log_softmax(logits, dim=-1)


def reference_logprobs(model, tokenizer, items: list[Probe], max_tokens: int) -> list:
    """The adapter's next-token log-probabilities over each probe's answer, on the prompt as the answer stage sent it."""
    out = []
    for p in items:
        ids, start = answer_positions(tokenizer, p.prompt, p.answer, max_tokens)
        out.append(next_token_logprobs(model, ids, start))
    return out


def rendered(tokenizer, context: str, question: str) -> str:
    """The prompt a runtime sends for [system: context, user: question]: the form's own chat template's rendering."""
    messages = [{"role": "system", "content": context}, {"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def compare(reference: list, model, tokenizer, items: list[Probe], max_tokens: int) -> Figures:
    """A form against the adapter's log-probabilities: the form reads its own chat template's rendering."""
    import torch

    kl_sum, agree, n = 0.0, 0, 0
    for ref, p in zip(reference, items):
        ids, start = answer_positions(tokenizer, rendered(tokenizer, p.context, p.question), p.answer, max_tokens)
        got = next_token_logprobs(model, ids, start)
        k = min(len(ref), len(got))
        kl = (ref[:k].exp() * (ref[:k] - got[:k])).sum(-1)
        kl_sum += float(torch.nan_to_num(kl, nan=math.inf).sum())
        agree += int((ref[:k].argmax(-1) == got[:k].argmax(-1)).sum())
        n += k
    kl = max(kl_sum / max(n, 1), 0.0)  # rounding can leave an identical form a hair below zero
    return Figures(kl=round(kl, 6), top1=round(agree / max(n, 1), 4), positions=n, probes=len(items))


def failures(form: str, f: Figures, export: Export) -> list[str]:
    """What fails the gate for one form: mean KL past `export.max_kl`, top-1 agreement below `export.min_top1` (a NaN
    fails), a task's paired benchmark interval wholly below -`export.tolerance`."""
    out = []
    if not f.kl <= export.max_kl:
        out.append(f"{form}: mean KL {f.kl:.4g} nats > export.max_kl={export.max_kl} over {f.positions} answer "
                   "positions of the probes")
    elif not f.top1 >= export.min_top1:
        out.append(f"{form}: top-1 agreement {f.top1:.1%} < export.min_top1={export.min_top1:.0%} over "
                   f"{f.positions} answer positions of the probes")
    out += [f"{form}: {d.task} {d.metric} cosine {d.mean:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}] minus the adapter's "
            f"over {d.questions} benchmark questions, wholly below -export.tolerance=-{export.tolerance}"
            for d in f.benchmark if d.ci[1] < -export.tolerance]
    return out


def check(figures: dict[str, Figures], export: Export, where: str = "the figures") -> None:
    """Raise ExportGateError naming each form that fails the gate (`failures`) and its figure; `where` names the
    file that holds the figures."""
    failed = [line for form, f in figures.items() for line in failures(form, f, export)]
    if failed:
        raise ExportGateError(f"the export does not answer like its adapter ({'; '.join(failed)}): see {where}; a "
                              "wrong chat template or a damaged tensor gives this")


def write_forms(model: Model, rag: Rag, export: Export, variant: str, out: Path, template: str,
                kinds: tuple[str, ...] | None = None,
                adapter_dirs: dict[str, str] | None = None) -> dict[str, tuple[Path, str | None]]:
    """The merged form, the GGUF forms of `kinds` (default `export.gguf_types`) and the Ollama Modelfile (on the
    last of them, with `rag`'s decoding settings), written into `out`; returns each form's directory and GGUF file
    name (None for the merged safetensors)."""
    from sling.io import atomic_write_text
    from sling.models.loading import load_tokenizer

    kinds = tuple(export.gguf_types if kinds is None else kinds)
    save_merged(merged_student(model, variant, adapter_dirs), load_tokenizer(), template, out / "merged")
    forms: dict[str, tuple[Path, str | None]] = {"merged": (out / "merged", None)}
    name = f"sling-{variant}"
    for kind in kinds:
        file = f"{name}-{kind}.gguf"
        write_gguf(out / "merged", out / file, kind, template, export.tokenizer_pre, name)
        forms[kind] = (out, file)
    if kinds:
        atomic_write_text(out / "Modelfile", modelfile(f"{name}-{kinds[-1]}.gguf", rag))
    return forms


def measure(model: Model, export: Export, variant: str, forms: dict[str, tuple[Path, str | None]], items: list[Probe],
            adapter_dirs: dict[str, str] | None = None) -> dict[str, Figures]:
    """Each form against the adapter (`reference_student`) on the probes, over `export.probe_tokens` answer tokens."""
    from sling.models.loading import load_tokenizer

    reference = reference_logprobs(reference_student(model, variant, adapter_dirs), load_tokenizer(), items,
                                   export.probe_tokens)
    figures = {}
    for form, (path, file) in forms.items():
        loaded, tokenizer = load_form(path, file)
        figures[form] = compare(reference, loaded, tokenizer, items, export.probe_tokens)
        log.info("%s: mean KL %.3g, top-1 agreement %.1f%% over %d positions", form, figures[form].kl,
                 100 * figures[form].top1, figures[form].positions)
        del loaded
    return figures
