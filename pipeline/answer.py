"""Stage answer: each benchmark question through RAG, for every student variant and the reference.

    python -m pipeline.answer students                      # stage answer: base, +general, +general+domain
    python -m pipeline.answer reference                     # stage reference: the question files' or the teacher's
    python -m pipeline.answer students rag.top_k=5 rag.variants=[base,domain]
    python -m pipeline.answer students rag.engine=openai rag.server.base_url=http://gpu-box:8000/v1

Per task: embed the questions, retrieve `rag.top_k` chunks from Qdrant, fill `rag.prompt_template`,
and generate with batched greedy decoding (`rag.max_new_tokens`, `rag.repetition_penalty`) for the base
model, +general and +general+domain (loaded by `sling.models.loading.load_student`, as training built them).
With `rag.engine=openai` the students answer from an OpenAI-compatible server instead (vLLM on a GPU box):
each variant's prompts go to the model served as `rag.server.models.<variant>`, through the teacher's client
(sling.teacher.client: concurrency, the client's retries, a reply cache, failures reported together); each
row records the engine, the server and the served model.
The reference answer is the question file's (`data.reference=column`: hand-written for the sample, the
paper's gpt-3.5 answers, or the oracle the benchmark stage had the teacher write from the source paragraph),
or the teacher's in the same RAG setup (`data.reference=teacher`), and says which (`reference_source`).
Each row records the answer, the retrieved chunk ids and texts, latency and token counts.
"""
from __future__ import annotations

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.errors import UserError
from sling.io import write_json
from sling.paths import ANSWER_METRICS, REFERENCE_DIR, STUDENTS_DIR
from sling.retrieval.answering import (
    answer_students,
    check_server,
    prepare,
    reference_answers,
    save,
)
from sling.tracking.runs import log_artifact, log_metrics, stage_run


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("students", "reference"):
        raise UserError("say who answers: python -m pipeline.answer {students|reference} [key=value ...]")
    who, cfg = argv[0], load_config(argv[1:])
    if who == "students":
        check_server(cfg.rag, cfg.train)
    with stage_run(f"answer_{who}", cfg):
        per_task = prepare(cfg.rag)
        if who == "reference":
            for task, (questions, chunks, prompts) in per_task.items():
                rows = reference_answers(cfg.data, cfg.teacher, cfg.model, questions, prompts)
                save("reference", task, questions, chunks, rows)
            log_artifact(resolve_path(REFERENCE_DIR))
            return
        summary = answer_students(cfg.model, cfg.rag, cfg.train, cfg.cache_dir, per_task)
        write_json(resolve_path(ANSWER_METRICS), summary)
        log_metrics(summary, prefix="answer.")
        log_artifact(resolve_path(STUDENTS_DIR))


if __name__ == "__main__":
    run(main)

