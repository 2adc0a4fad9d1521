"""Batched greedy decoding with an in-place key/value cache: one implementation for every local model that writes
text (the students in the answer stage, the embedded teacher in synthesize, benchmark and reference).

    rows = generate(model, tokenizer, prompts, max_new_tokens=150, repetition_penalty=1.15, batch_size=16)

Prompts are decoded in near-equal batches sorted by length; on a CPU each prompt is prefilled alone into the
shared cache (no compute on padding), then the batch decodes together (`prefill_per_prompt`), appending in place
(`kv_cache`). tests/test_answer.py checks that the answers equal transformers' own one-at-a-time `generate`.
"""
from __future__ import annotations

import functools
import math
import time

from tqdm import tqdm


@functools.cache
def _buffered_layer_class():
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A DynamicLayer that appends in place into a preallocated buffer and hands attention a view of it."""

        capacity = 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n, new = self.get_seq_length(), key_states.shape[-2]
            if self.keys is not getattr(self, "_view", None) or n + new > self._kbuf.shape[-2]:
                # first use, outgrown, or keys replaced outside update (crop, reorder): a new buffer
                self.reserve(key_states.shape[0], key_states, max(self.capacity, 2 * (n + new) if n else new))
                if n:
                    self._kbuf[..., :n, :], self._vbuf[..., :n, :] = self.keys, self.values
            self._kbuf[..., n:n + new, :] = key_states
            self._vbuf[..., n:n + new, :] = value_states
            return self.set_length(n + new)

        def reserve(self, batch: int, like, size: int) -> None:
            # zeros, not empty: left-padding positions are masked, but 0 * NaN garbage would still poison attention
            shape = (batch, like.shape[1], size, like.shape[-1])
            self._kbuf, self._vbuf = like.new_zeros(shape), like.new_zeros(shape)

        def place(self, row: int, batch: int, keys, values, end: int, size: int) -> None:
            """One prompt's keys/values (batch of 1) into `row` of a `batch`-row buffer, ending just before `end`."""
            if not self.is_initialized:
                self.lazy_initialization(keys, values)
                self.reserve(batch, keys, size)
            self._kbuf[row, :, end - keys.shape[-2]:end] = keys[0]
            self._vbuf[row, :, end - keys.shape[-2]:end] = values[0]

        def set_length(self, n: int):
            self.keys = self._view = self._kbuf[..., :n, :]
            self.values = self._vbuf[..., :n, :]
            return self.keys, self.values

    return BufferedLayer


def kv_cache(model, capacity: int):
    """A cache for `generate` whose layers append in place into preallocated buffers, or None to use the default.

    transformers' DynamicLayer appends by concatenating, which copies every layer's whole cache at every
    decoding step; with batched 1,000-token RAG prompts on a CPU that copy rivals the model's own matmuls
    (profile a decoding step to see it). These buffers hold `capacity` positions (prompt + new tokens) and
    attention gets a view of the filled part, so a step writes only the new position: the same keys and
    values, fewer copies. None for models whose cache is not plain full attention (sliding-window or hybrid
    layers), which keep transformers' own cache.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    layer_class = _buffered_layer_class()
    cache.layers = [layer_class() for _ in cache.layers]
    for layer in cache.layers:
        layer.capacity = capacity
    return cache


def prefill_per_prompt(model, enc, capacity: int):
    """Each prompt's prefix (all but its last token) through the model alone, written into one left-padded cache.

    In a padded batch every pad position costs a full token of compute, and on a CPU, which is compute-bound
    here, batched prefill saves nothing else (bench/bench_answer.py --prefills per_prompt,batched compares the
    two). The merged cache holds, for every real position, the keys and values that prompt's own forward pass
    gives (positions count from its first real token, as in a left-padded batch); `generate` then runs the last
    prompt token and the decoding for the whole batch.
    Returns None where `kv_cache` does (the caller then prefills batched).
    """
    cache = kv_cache(model, capacity)
    if cache is None:
        return None
    ids, mask = enc["input_ids"], enc["attention_mask"].bool()
    width = ids.shape[1] - 1
    for b, (row, keep) in enumerate(zip(ids, mask)):
        real = row[keep][:-1]
        if not len(real):
            continue
        own = kv_cache(model, len(real))
        model(input_ids=real[None], past_key_values=own, use_cache=True, logits_to_keep=1)
        for layer, part in zip(cache.layers, own.layers):
            layer.place(b, ids.shape[0], part.keys, part.values, width, capacity)
    for layer in cache.layers:
        if layer.is_initialized:
            layer.set_length(width)
    return cache


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, repetition_penalty: float = 1.0,
             batch_size: int = 16, prefill: str = "auto", add_special_tokens: bool = True,
             desc: str = "decode", temperature: float = 0.0, seed: int = 0,
             stop: list[str] | None = None) -> list[dict]:
    """Batched decoding, greedy (`temperature` 0) or sampled at `temperature` (nucleus 0.95, torch's generator seeded
    with `seed` and the batch's place, so a re-run with the same prompts samples the same); per prompt, in input
    order: answer text, prompt and answer token counts, and the batch's wall time shared per answer. A row ends at
    any of the `stop` strings too (kept in its text): a batch then runs until its longest row reaches one, not until
    every row has written `max_new_tokens`.

    Prompts are batched in order of length (less left padding), in near-equal batches of at most `batch_size`
    (11 prompts at 8 make 6 + 5, not 8 + 3: every batch runs until its longest answer ends). `prefill` picks how
    prompts enter the cache (`per_prompt`, `batched`, or `auto`: one at a time on a CPU, batched on a GPU).
    """
    import torch

    tokenizer.padding_side = "left"
    lengths = [len(tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    n_batches = math.ceil(len(order) / batch_size)
    bounds = [round(k * len(order) / n_batches) for k in range(n_batches + 1)] if order else [0]
    per_prompt = prefill == "per_prompt" or (prefill == "auto" and model.device.type == "cpu")
    out_rows: list[dict | None] = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt", leave=False)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature > 0 else {"do_sample": False}
    if stop:
        sampling |= {"stop_strings": list(stop), "tokenizer": tokenizer}
    for lo, hi in zip(bounds, bounds[1:]):
        idx = order[lo:hi]
        if temperature > 0:
            torch.manual_seed(seed * 100_003 + lo)
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                        add_special_tokens=add_special_tokens).to(model.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            capacity = enc["input_ids"].shape[1] + max_new_tokens
            cache = prefill_per_prompt(model, enc, capacity) if per_prompt else None
            if cache is None:
                cache = kv_cache(model, capacity)  # None here too: transformers' own cache
            out = model.generate(**enc, past_key_values=cache, max_new_tokens=max_new_tokens, **sampling,
                                 repetition_penalty=repetition_penalty, pad_token_id=tokenizer.pad_token_id)
        elapsed = time.perf_counter() - t0
        for j, row in enumerate(out[:, enc["input_ids"].shape[1]:]):
            row = row[row != tokenizer.pad_token_id]
            out_rows[idx[j]] = {"answer": tokenizer.decode(row, skip_special_tokens=True).strip(),
                                "prompt_tokens": int(enc["attention_mask"][j].sum()), "answer_tokens": int(len(row)),
                                "latency_s": round(elapsed / len(idx), 4), "batch_latency_s": round(elapsed, 4)}
        bar.update(len(idx))
    bar.close()
    return out_rows
