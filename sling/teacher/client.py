"""Teachers: the models that write synthetic Q&A and reference answers, behind one interface.

`openai`: the official client against any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp);
the API key comes from the environment variable named by `teacher.api_key_env` and goes nowhere else.
Retries with exponential backoff and jitter on 429, 5xx, connection errors and timeouts, honouring
Retry-After, are the client's own (`max_retries`); requests run `teacher.concurrency` at a time.

`embedded`: a transformers model in-process (the offline default), batched greedy decoding.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Iterator, Protocol

from tqdm import tqdm

from sling import schema
from sling.config import resolve_path
from sling.errors import UserError
from sling.paths import BASE_DIR
from sling.teacher.cache import ReplyCache

log = logging.getLogger(__name__)


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


class Teacher(Protocol):
    name: str
    concurrency: int

    def complete(self, prompt: str, temperature: float | None = None) -> Completion: ...


class TeacherError(UserError, RuntimeError):
    """A teacher (or the students' server) that cannot be used as configured: its API key is not in the environment,
    or its server does not answer. The message names the setting to fix."""


class OpenAITeacher:
    """Chat completions from an OpenAI-compatible server, configured by one config section: `teacher`, or the
    students' `rag.server` with the variant's served model (pipeline.answer). `section` and `use` name that
    section and the setting that chose the server in error messages. An `extra_body` in the section goes with
    every request (sampling parameters the OpenAI API lacks, e.g. vLLM's `repetition_penalty`)."""

    def __init__(self, teacher: schema.Teacher, section: str = "teacher", use: str = "teacher=openai"):
        import openai

        key = os.environ.get(teacher.api_key_env)
        if not key:
            raise TeacherError(f"{use} needs an API key in the environment variable {teacher.api_key_env} "
                               f"(set {section}.api_key_env to use another name; local servers accept any value)")
        self.client = openai.OpenAI(api_key=key, base_url=teacher.base_url, max_retries=teacher.max_retries,
                                    timeout=teacher.timeout_s)
        self.model, self.cfg, self.section = teacher.model, teacher, section
        self.name = f"openai:{teacher.model}"
        self.concurrency = teacher.concurrency

    def complete(self, prompt: str, temperature: float | None = None, max_tokens: int | None = None) -> Completion:
        """One reply at the section's temperature, or at `temperature` for a sampled candidate; at most `max_tokens`
        (None: the section's max_new_tokens)."""
        r = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens or self.cfg.max_new_tokens,
            temperature=self.cfg.temperature if temperature is None else temperature,
            extra_body=self.cfg.get("extra_body"))
        usage = r.usage
        text = r.choices[0].message.content or ""
        return Completion(text.strip(), getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)


class EmbeddedTeacher:
    """A local causal LM used through its chat template; greedy, left-padded batches."""

    def __init__(self, teacher: schema.Teacher, model: schema.Model):
        from sling.models.loading import load_student, load_tokenizer, torch_dtype
        from sling.precision import decode_dtype

        self.cfg = teacher
        self.tokenizer = load_tokenizer(teacher.model)
        self.tokenizer.padding_side = "left"
        self.model = load_student(model, "base") if teacher.model == BASE_DIR else _load_path(teacher.model)
        # teacher.dtype (auto: bfloat16 where the hardware has it natively, sling.precision); the name records a
        # non-float32 dtype, so replies cached from one dtype are not served for another
        self.dtype = decode_dtype(teacher.get("dtype", "float32"), "teacher.dtype")
        if self.dtype != "float32":
            self.model = self.model.to(torch_dtype(self.dtype))
        self.name = f"embedded:{model.name}" + ("" if self.dtype == "float32" else f":{self.dtype}")
        self.concurrency = teacher.batch_size

    def _chat(self, prompt: str) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True)
        return prompt

    def complete_batch(self, prompts: list[str], temperature: float | None = None, seed: int = 0,
                       stop: list[str] | None = None, max_tokens: int | None = None) -> list[Completion]:
        """Greedy answers (or, at `temperature`, sampled ones, seeded by `seed`) through the answer stage's batched
        decoding and in-place cache (sling.models.decoding); a reply ends at a `stop` string, kept in its text."""
        from sling.models.decoding import generate

        rows = generate(self.model, self.tokenizer, [self._chat(p) for p in prompts],
                        max_new_tokens=max_tokens or self.cfg.max_new_tokens, batch_size=self.cfg.batch_size,
                        prefill=self.cfg.get("prefill", "auto"), add_special_tokens=False, desc="teacher",
                        temperature=temperature or 0.0, seed=seed, stop=stop)
        return [Completion(r["answer"], r["prompt_tokens"], r["answer_tokens"]) for r in rows]

    def complete(self, prompt: str, temperature: float | None = None) -> Completion:
        return self.complete_batch([prompt], temperature)[0]


def _load_path(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(resolve_path(path))).eval()


def server_hint(teacher) -> str:
    """For the message of calls that failed: the server they went to, the setting that names it, and what to try.
    Empty for the embedded teacher, whose calls do not fail this way."""
    if not isinstance(teacher, OpenAITeacher):
        return ""
    s = teacher.section
    return (f"; is the server at {teacher.cfg.base_url} ({s}.base_url) up and serving {teacher.model}? Start it or "
            f"fix {s}.base_url, or raise {s}.max_retries for a slow one")


def make_teacher(teacher: schema.Teacher, model: schema.Model) -> Teacher:
    """The teacher that `teacher` configures; an embedded one that is the student's own base snapshot loads it as
    `model` says."""
    if teacher.kind == "openai":
        return OpenAITeacher(teacher)
    return EmbeddedTeacher(teacher, model)


def stream(teacher: Teacher, prompts: list[str], temperature: float | None = None, seed: int = 0,
           stop: list[str] | None = None, max_tokens: int | None = None) -> Iterator[tuple[int, Completion | Exception]]:
    """Yield (index, completion or the exception that ended it) as each call finishes.

    Remote teachers keep `concurrency` requests in flight; the embedded one decodes `batch_size` at a time.
    A call that still fails after the client's retries is yielded as its exception, so the caller can
    save every finished call and report the failures together. `temperature`: sampled replies (None: the teacher's
    own setting); `seed` seeds the embedded teacher's sampling; `stop`: strings that end the embedded teacher's reply
    (a server's replies run whole: an API's stop sequence would cut the string itself off, and the caller reads what
    it needs from the whole reply); `max_tokens`: a shorter reply limit than the teacher's max_new_tokens.
    """
    if isinstance(teacher, EmbeddedTeacher):
        step = teacher.concurrency
        for start in range(0, len(prompts), step):
            batch = prompts[start:start + step]
            done = (teacher.complete_batch(batch) if temperature is None and stop is None and max_tokens is None else
                    teacher.complete_batch(batch, temperature, seed + start, stop, max_tokens))
            for offset, completion in enumerate(done):
                yield start + offset, completion
        return
    with ThreadPoolExecutor(teacher.concurrency) as pool:
        futures = {pool.submit(teacher.complete, p, temperature, *([max_tokens] if max_tokens else [])): i
                   for i, p in enumerate(prompts)}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()


class CachedCalls:
    """Runs prompts through the teacher, serving what the cache holds and saving each new reply at once.

    Replies are keyed by teacher, `prompt_version`, prompt and generation parameters (sling.teacher.cache): the
    teacher's own (`max_new_tokens` and `temperature` of the section it was made from, `teacher.cfg`), or
    `generation` for other callers (the answer stage's students behind a server); they live in
    `cache_dir/<cache_name>`.
    """

    def __init__(self, cache_dir: str, teacher, prompt_version: str, generation: dict | None = None,
                 cache_name: str = "teacher"):
        self.teacher, self.prompt_version = teacher, prompt_version
        self.generation = generation or {"max_new_tokens": teacher.cfg.max_new_tokens,
                                         "temperature": teacher.cfg.temperature}
        self.cache = ReplyCache(resolve_path(cache_dir) / cache_name)
        self.usage = Counter()
        self.failures: list[str] = []

    def key(self, prompt: str, temperature: float | None = None, sample: int | None = None,
            stop: list[str] | None = None, max_tokens: int | None = None) -> str:
        generation = dict(self.generation)
        if max_tokens is not None:
            generation["max_new_tokens"] = max_tokens
        if temperature is not None:
            generation |= {"temperature": temperature, "sample": sample}
        if stop and isinstance(self.teacher, EmbeddedTeacher):
            generation["stop"] = list(stop)
        return self.cache.key(teacher=self.teacher.name, prompt_version=self.prompt_version, prompt=prompt,
                              **generation)

    def run(self, prompts: list[str], desc: str, temperature: float | None = None,
            samples: list[int] | None = None, stop: list[str] | None = None,
            max_tokens: int | None = None) -> list[str | None]:
        """Each prompt's reply text, None where the call failed (see `failures`). With a `temperature`, each prompt
        is sample number `samples[i]` at that temperature, cached under its number: several samples of one prompt
        are several cached calls. `stop`: strings that end an embedded teacher's reply (`stream`); `max_tokens`: a
        shorter limit than the teacher's, cached as its own generation setting."""
        return [None if r is None else r["text"]
                for r in self.run_records(prompts, desc, temperature, samples, stop, max_tokens)]

    def run_records(self, prompts: list[str], desc: str, temperature: float | None = None,
                    samples: list[int] | None = None, stop: list[str] | None = None,
                    max_tokens: int | None = None) -> list[dict | None]:
        """Each prompt's reply as cached: text, prompt_tokens and completion_tokens; None where the call failed."""
        if temperature is not None and samples is None:
            raise ValueError("sampled calls need their sample numbers")
        keys = [self.key(p, temperature, samples[i] if samples else None, stop, max_tokens)
                for i, p in enumerate(prompts)]
        replies: list[dict | None] = [None] * len(prompts)
        todo = []
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is None:
                todo.append(i)
            else:
                replies[i] = hit
                self.usage["cache_hits"] += 1
        with tqdm(total=len(prompts), initial=len(prompts) - len(todo), desc=desc, unit="call") as bar:
            seed = int(keys[todo[0]][:8], 16) if todo else 0  # a sampled batch's seed follows what it holds
            for j, result in stream(self.teacher, [prompts[i] for i in todo], temperature, seed, stop, max_tokens):
                i = todo[j]
                bar.update(1)
                if isinstance(result, Exception):
                    self.usage["failed_calls"] += 1
                    self.failures.append(f"{type(result).__name__}: {result}")
                    continue
                assert isinstance(result, Completion)
                replies[i] = {"text": result.text, "prompt_tokens": result.prompt_tokens,
                              "completion_tokens": result.completion_tokens}
                self.cache.put(keys[i], replies[i])
                self.usage["calls"] += 1
                self.usage["prompt_tokens"] += result.prompt_tokens
                self.usage["completion_tokens"] += result.completion_tokens
        return replies
