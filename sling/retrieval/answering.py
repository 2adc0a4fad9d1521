"""Answering benchmark questions with retrieved context: the student variants (base, +general, +general+domain and their
extra training seeds) in-process or through an OpenAI-compatible server, and the reference answers (the question files'
or the teacher's). Owns the RAG prompt (`rag.prompt_template`, the closed-book prompt), retrieval from the store, the
batched generation call and the answer rows the score stage reads. Entry point: `pipeline/answer.py`.
"""
from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from sling.config import resolve_path
from sling.errors import ConfigError, InputError, UserError
from sling.io import read_jsonl, write_jsonl
from sling.models import decoding
from sling.models.loading import (
    VARIANTS,
    adapter_dirs_for,
    load_student,
    load_tokenizer,
)
from sling.paths import (
    BASE_DIR,
    MODEL_PROVENANCE,
    answers_path,
    produced,
    questions_path,
    seeded,
    tasks,
)
from sling.embed import embed
from sling.retrieval.store import collection_name, qdrant_client
from sling.schema import Data, Model, Rag, Server, Teacher, Train

log = logging.getLogger("answer")


class AnswerError(UserError, RuntimeError):
    """The students' answers could not all be had; the message says what finished and how to go on."""


def retrieve(rag: Rag, client, task: str, questions: list[dict]) -> list[list[dict]]:
    vectors = embed(rag.embedder, [q["question"] for q in questions])
    hits = []
    for v in vectors:
        res = client.query_points(collection_name(rag, task), query=v.tolist(), limit=rag.top_k, with_payload=True)
        hits.append([{"id": str(p.id), "score": round(float(p.score), 5), "text": p.payload["text"],
                      "document": p.payload["document"], "pages": p.payload["pages"]} for p in res.points])
    return hits


def build_prompt(rag: Rag, question: str, chunks: list[dict]) -> str:
    context = "\n\n".join(c["text"] for c in chunks)
    return rag.prompt_template.format(context=context, question=question)


def generate(model, tokenizer, prompts: list[str], rag: Rag) -> list[dict]:
    """The students' answers to `prompts` with the `rag` decoding settings (sling.models.decoding.generate)."""
    return decoding.generate(model, tokenizer, prompts, max_new_tokens=rag.max_new_tokens,
                             repetition_penalty=rag.repetition_penalty, batch_size=rag.batch_size,
                             prefill=rag.prefill, desc="answer")


def answerers(rag: Rag, train: Train) -> list[tuple[str, str, int | None]]:
    """Who answers: each variant of `rag.variants`, and each tuned one again with every extra training seed's
    adapters (`train.extra_seeds`), as (the answers' name, the variant, the extra seed or None)."""
    out = []
    for variant in rag.variants:
        out.append((variant, variant, None))
        if VARIANTS.get(variant):
            out += [(seeded(variant, s), variant, s) for s in train.extra_seeds]
    return out


def load_answerer(model: Model, rag: Rag, variant: str, seed: int | None = None):
    """The student variant as training built it (with an extra seed's adapters when `seed` is given), cast to
    `rag.dtype` for answering (`auto`: bfloat16 where the hardware has it natively, sling.precision;
    bench/bench_answer.py measures both sides); under rag.engine=llamacpp, merged and written as GGUF of
    `rag.gguf_type` for llama.cpp (sling.models.llamacpp)."""
    if rag.engine == "llamacpp":
        return llamacpp_answerer(model, rag, variant, seed)
    return cast_for_answering(model, rag, load_student(model, variant, adapter_dirs_for(seed)))


def llamacpp_answerer(model: Model, rag: Rag, variant: str, seed: int | None = None):
    """The variant merged in float32, written as a GGUF file of `rag.gguf_type` in a temporary folder and opened by
    llama.cpp (which maps the file: it is removed once open)."""
    import tempfile
    from pathlib import Path

    from sling.models import llamacpp
    from sling.models.export import chat_template, merged_student

    llamacpp.require("rag.engine=llamacpp")
    if model.quantization != "none":
        raise ConfigError(f"rag.engine=llamacpp writes the student's float weights as GGUF (rag.gguf_type); "
                          f"model.quantization={model.quantization} has none: set model.quantization=none")
    student = merged_student(model, variant, adapter_dirs_for(seed))
    template = chat_template(rag.prompt_template, rag.closed_book_template)
    with tempfile.TemporaryDirectory() as tmp:
        # llama.cpp is handed token ids, never text (sling.models.llamacpp.generate): its pre-tokenizer is unused
        path = llamacpp.student_gguf(student, load_tokenizer(), rag.gguf_type, Path(tmp), template, "default",
                                     variant)
        del student
        return llamacpp.open_gguf(path, n_ctx=LLAMACPP_CONTEXT)


# llama.cpp's context, in tokens: the longest RAG prompt (top_k chunks of chunk_tokens, the template) and its answer
LLAMACPP_CONTEXT = 4096


def cast_for_answering(model: Model, rag: Rag, student):
    """A loaded `student` (or an exported form of one, sling.scoring.exported) in `rag.dtype`, as the answer stage
    decodes it; a 4-bit model (model.quantization) stays as it is."""
    from sling.models.loading import torch_dtype
    from sling.precision import decode_dtype

    if model.quantization == "none":
        student = student.to(torch_dtype(decode_dtype(rag.dtype)))
    return student


def reference_answers(data: Data, teacher: Teacher, model: Model, questions: list[dict],
                      prompts: list[str]) -> list[dict]:
    """The reference answer rows: the question files' (`data.reference=column`), or the teacher's (sling.teacher.client:
    `teacher`, and `model` where the teacher is the student's own base) to the same RAG `prompts`."""
    if data.reference == "column":
        missing = [q["id"] for q in questions if not str(q.get("reference") or "").strip()]
        if missing:
            raise InputError(f"data.reference=column but questions {missing} have no reference answer in their file "
                             "(`reference`, or the paper's `gpt_response`; see data.tasks.<task>.questions): write them, "
                             "or set data.reference=teacher")
        return [{"answer": q["reference"].strip(), "prompt_tokens": None, "answer_tokens": None, "latency_s": None,
                 "reference_source": q.get("reference_source")} for q in questions]
    from sling.teacher.client import TeacherError, make_teacher, server_hint, stream

    referee = make_teacher(teacher, model)
    rows: list[dict | None] = [None] * len(prompts)
    for i, result in stream(referee, prompts):
        if isinstance(result, Exception):
            raise TeacherError(f"the teacher failed on question {questions[i]['id']} ({type(result).__name__}: "
                               f"{result}){server_hint(referee)}") from result
        rows[i] = {"answer": result.text, "prompt_tokens": result.prompt_tokens, "answer_tokens": result.completion_tokens,
                   "latency_s": None, "reference_source": f"rag:{referee.name}"}
    return rows


def check_collection(rag: Rag, client, task: str) -> None:
    """The index holds the task's collection, or an InputError names the stage that makes it."""
    if not client.collection_exists(collection_name(rag, task)):
        raise InputError(f"the index has no collection {collection_name(rag, task)} for task {task} "
                         f"(rag.qdrant_url={rag.qdrant_url}, rag.qdrant_path={rag.qdrant_path}): run "
                         "the index stage first (`dvc repro index`)")


def retrieve_prompts(rag: Rag, client, task: str, questions: list[dict]) -> tuple[list[list[dict]], list[str]]:
    """Each question's retrieved chunks from the task's collection and its filled RAG prompt: what the answer stage
    and `sling ask` (sling.serving.asking) both send to the student."""
    chunks = retrieve(rag, client, task, questions)
    return chunks, [build_prompt(rag, q["question"], c) for q, c in zip(questions, chunks)]


def prepare(rag: Rag) -> dict[str, tuple[list[dict], list[list[dict]], list[str]]]:
    """Per task: the questions, their retrieved chunks and the filled prompts."""
    client = qdrant_client(rag)
    try:
        per_task = {}
        for task in tasks():
            check_collection(rag, client, task)
            questions = read_jsonl(produced(questions_path(task), "benchmark"))
            per_task[task] = (questions, *retrieve_prompts(rag, client, task, questions))
        return per_task
    finally:
        client.close()


def closed_book_prompts(rag: Rag, questions: list[dict]) -> list[str]:
    """The closed-book arm's prompts (`rag.closed_book_template`): the question with no retrieved context; none
    when `rag.closed_book` is off."""
    return [rag.closed_book_template.format(question=q["question"]) for q in questions] if rag.closed_book else []


# Wall-clock timings change on every run: they go to metrics/answer.json, never into the answers (a DVC output that
# must be the same bytes when the same inputs are run again).
TIMINGS = ("latency_s", "batch_latency_s")


def save(name: str, task: str, questions: list[dict], chunks: list[list[dict]], rows: list[dict],
         closed_book: bool = False) -> None:
    write_jsonl(resolve_path(answers_path(name, task, closed_book)), [
        {"id": q["id"], "question": q["question"], "source_text": q.get("text", ""), "document": q.get("document", ""),
         "variant": name, "closed_book": closed_book, "retrieved": c,
         **{k: v for k, v in r.items() if k not in TIMINGS}} for q, c, r in zip(questions, chunks, rows)])


def save_both(name: str, task: str, questions: list[dict], chunks: list[list[dict]], rows: list[dict]) -> None:
    """A variant's answers to one task: the RAG ones first in `rows`, then the closed-book ones, if any."""
    n = len(questions)
    save(name, task, questions, chunks, rows[:n])
    if len(rows) > n:
        save(name, task, questions, [[] for _ in questions], rows[n:], closed_book=True)


def check_server(rag: Rag, train: Train) -> None:
    """With rag.engine=openai, every variant answered (`answerers`) needs the name the server serves it under."""
    if rag.engine != "openai":
        return
    models = rag.server.models or {}
    missing = [name for name, _, _ in answerers(rag, train) if not models.get(name)]
    if missing:
        raise ConfigError(f"rag.engine=openai needs a served model name for every variant in rag.variants; missing: "
                          f"{', '.join(f'rag.server.models.{v}' for v in missing)} (set e.g. "
                          f"-S rag.server.models.{missing[0]}={missing[0]}, the name the server serves it under)")
    unserved = [v for v in rag.variants if not server_url(rag.server, v)]
    if unserved:
        raise ConfigError(f"rag.engine=openai needs rag.server.base_url (or rag.server.base_urls.{unserved[0]}) "
                          "to name the server, e.g. http://127.0.0.1:8000/v1")


def checkpoint_digest(variant: str, seed: int | None = None) -> str | None:
    """A digest of the provenance of the variant's local weights (base snapshot and adapters) where they exist,
    so that answers cached for an older training of a variant are not served for a newer one."""
    from sling.io import sha256_text

    adapters = adapter_dirs_for(seed)
    dirs = [BASE_DIR, *(adapters[a] for a in VARIANTS.get(variant, []))]
    files = [resolve_path(d) / MODEL_PROVENANCE for d in dirs]
    found = [f.read_text(encoding="utf-8") for f in files if f.exists()]
    return sha256_text("\n".join(found)) if found else None


def server_url(server: Server, variant: str) -> str:
    """The server that serves `variant`: its own in rag.server.base_urls, else rag.server.base_url."""
    return (server.base_urls or {}).get(variant) or server.base_url


def server_calls(rag: Rag, cache_dir: str, name: str, variant: str, seed: int | None = None):
    """The teacher's cached, concurrent calls (sling.teacher.client), aimed at the model serving `variant`
    (`rag.server`): greedy, `rag.max_new_tokens`, `rag.repetition_penalty`. Replies are cached under
    `cache_dir/students`, keyed by served model name, prompt, generation settings and the local checkpoint's
    provenance, not by the server's address (the same model moved to another host or port is not asked again)."""
    from sling.teacher.client import CachedCalls, OpenAITeacher

    server = OmegaConf.to_container(rag.server, resolve=True)
    # repetition_penalty is no OpenAI parameter: vLLM takes it in the request body, servers without it ignore it
    extra = {"repetition_penalty": rag.repetition_penalty}
    section = OmegaConf.create({**server, "base_url": server_url(rag.server, variant), "model": server["models"][name],
                                "max_new_tokens": rag.max_new_tokens, "temperature": 0.0, "extra_body": extra})
    client = OpenAITeacher(section, section="rag.server", use="rag.engine=openai")
    generation = {"max_new_tokens": rag.max_new_tokens, "temperature": 0.0, **extra,
                  "checkpoint": checkpoint_digest(variant, seed)}
    return CachedCalls(cache_dir, client, "rag", generation=generation, cache_name="students")


def server_answers(calls, prompts: list[str], desc: str) -> list[dict | None]:
    """Answer rows for `prompts` from the server behind `calls` (server_calls); None where a call failed.
    Per-answer latency is not measured (cached answers have none); metrics/answer.json has the throughput."""
    client = calls.teacher
    return [None if r is None else
            {"answer": r["text"], "prompt_tokens": r["prompt_tokens"], "answer_tokens": r["completion_tokens"],
             "latency_s": None, "engine": "openai", "server": client.cfg.base_url, "model": client.model}
            for r in calls.run_records(prompts, desc)]


def answer_students_through_server(rag: Rag, train: Train, cache_dir: str, per_task) -> dict:
    """Every variant and task (`answerers`) from the server; nothing is written unless every answer arrived."""
    summary, done, failed, finished = {}, {}, [], 0
    for name, variant, seed in answerers(rag, train):
        calls = server_calls(rag, cache_dir, name, variant, seed)
        for task, (questions, chunks, prompts) in per_task.items():
            t0 = time.perf_counter()
            hits, new = calls.usage["cache_hits"], calls.usage["calls"]
            rows = server_answers(calls, prompts + closed_book_prompts(rag, questions), f"answer {name}/{task}")
            wall = time.perf_counter() - t0
            if any(r is None for r in rows):
                continue
            done[name, task] = (questions, chunks, rows)
            summary[f"{name}.{task}"] = {
                "answers_per_s": round(len(rows) / wall, 3),
                "tokens_per_s": round(sum(r["answer_tokens"] for r in rows) / wall, 2),
                "server_calls": calls.usage["calls"] - new, "cache_hits": calls.usage["cache_hits"] - hits}
            log.info("%s/%s: %d answers from %s in %.1fs", name, task, len(rows), calls.teacher.name, wall)
        failed += [f"{name} at {calls.teacher.cfg.base_url}: {f}" for f in calls.failures]
        finished += calls.usage["calls"] + calls.usage["cache_hits"]
    if failed:
        raise AnswerError(f"{len(failed)} answer calls to the students' server failed after "
                          f"{rag.server.max_retries} retries (first: {failed[0]}); the {finished} finished "
                          "answers are cached, re-run to ask only for the missing ones (raise rag.server.max_retries, or check "
                          "the server)")
    for (name, task), (questions, chunks, rows) in done.items():
        save_both(name, task, questions, chunks, rows)
    return summary


def answer_locally(model: Model, rag: Rag, student, tokenizer, prompts: list[str]) -> list[dict]:
    """A loaded `student`'s answer rows for `prompts` (batched greedy decoding, `generate`), each naming the engine
    and `model.name`: the answer stage's local path, and `sling ask`'s."""
    local = {"engine": rag.engine, "server": None, "model": model.name}
    if rag.engine == "llamacpp":
        from sling.models import llamacpp

        rows = llamacpp.generate(student, tokenizer, prompts, max_new_tokens=rag.max_new_tokens,
                                 repetition_penalty=rag.repetition_penalty, desc="answer")
    else:
        rows = generate(student, tokenizer, prompts, rag)
    return [r | local for r in rows]


def answer_students(model: Model, rag: Rag, train: Train, cache_dir: str, per_task) -> dict:
    """Every variant's answers to every task (`answerers`), written as the answer stage's outputs, with the throughput
    of each: in this process, or from the server (rag.engine=openai, its replies cached under `cache_dir`)."""
    if rag.engine == "openai":
        return answer_students_through_server(rag, train, cache_dir, per_task)
    summary = {}
    tokenizer = load_tokenizer()
    for name, variant, seed in answerers(rag, train):
        student = load_answerer(model, rag, variant, seed)
        for task, (questions, chunks, prompts) in per_task.items():
            t0 = time.perf_counter()
            rows = answer_locally(model, rag, student, tokenizer, prompts + closed_book_prompts(rag, questions))
            wall = time.perf_counter() - t0
            save_both(name, task, questions, chunks, rows)
            summary[f"{name}.{task}"] = {"answers_per_s": round(len(rows) / wall, 3),
                                         "latency_s": round(sum(r["latency_s"] for r in rows) / len(rows), 4),
                                         "tokens_per_s": round(sum(r["answer_tokens"] for r in rows) / wall, 2)}
            log.info("%s/%s: %d answers in %.1fs", name, task, len(rows), wall)
        del student
    return summary

