"""Reading a user's documents into paragraphs: finding them, checking and repairing PDFs, partitioning with
unstructured (OCR where a page has no text layer), merging fragments into paragraphs with page numbers, cleaning,
the fidelity check against a second reading, language detection, the per-document cache, and worker processes.
Entry point: `pipeline/ingest.py`.
"""
from __future__ import annotations

import collections
import functools
import json
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import unicodedata
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from omegaconf import OmegaConf
from tqdm import tqdm

from sling.config import resolve_path
from sling.documents.clean import KINDS as CLEAN_KINDS
from sling.documents.clean import clean as clean_text
from sling.documents.clean import clean_glyphs, vocabulary
from sling.documents.clean import flags as text_flags
from sling.documents.clean import kind as paragraph_kind
from sling.documents.fidelity import check as check_fidelity
from sling.documents.fidelity import second_reading
from sling.documents.language import detect_language
from sling.errors import UserError
from sling.io import read_json, sha256_text, write_json
from sling.schema import Ingest

log = logging.getLogger("ingest")


DROP_TYPES = {"Header", "Footer", "PageNumber", "PageBreak", "Image", "Figure", "FigureCaption", "Table"}


BODY_TYPES = {"NarrativeText", "Text", "ListItem", "UncategorizedText", "Formula", "Address", "EmailAddress"}


REFERENCES = re.compile(r"^\s*(\d+\.?\s*)?(references|bibliography|works cited|literature cited)\s*$", re.I)


SENTENCE_END = re.compile(r"[.!?:][\"')\]]?$")


CITATION = re.compile(r"\b(19|20)\d{2}[a-z]?\b|^\[\d+\]|\bdoi\b|\bet al\.|\bpp\.|https?://", re.I)


PAGE_NUMBER = re.compile(r"^(page\s*)?[\divxlc]+(\s*(of|/)\s*\d+)?$", re.I)


WORD = re.compile(r"[a-z0-9]+")


FIDELITY_KEYS = ("absent_share_before", "absent_share", "pages_repaired", "words_repaired_from_reading",
                 "ligature_repairs")


QUALITY_SHARES = ("ligature_share", "hyphenation_share", "glyph_garbage_share", "non_prose_share",
                  "ligature_share_after", "hyphenation_share_after", "glyph_garbage_share_after")


class DocumentError(UserError):
    """A document that cannot be ingested; the message says why and what to do, `kind` is a short code
    for counting skips (a metric name)."""

    def __init__(self, message: str, kind: str = "unreadable"):
        super().__init__(message)
        self.kind = kind


@dataclass
class Block:
    page: int | None
    kind: str
    text: str


def _quiet_unstructured() -> None:
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def check_pdf(path: Path) -> list[str]:
    """Raw text of each page via pypdf; raises DocumentError for encrypted, corrupt, empty, scanned PDFs."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if path.stat().st_size == 0:
        raise DocumentError("empty file (0 bytes)", "empty")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:  # pypdf raises several types for unsupported crypto
                ok = 0
            if not ok:
                raise DocumentError("encrypted PDF: remove the password (e.g. `qpdf --decrypt in.pdf out.pdf`) and re-run", "encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError, TypeError) as e:
        raise DocumentError(f"corrupt or unreadable PDF ({type(e).__name__}: {e}); re-export or repair it", "corrupt") from e
    if not pages:
        raise DocumentError("PDF has no pages", "empty")
    if not any(p.strip() for p in pages):
        raise DocumentError(f"no text layer on any of its {len(pages)} page(s): a scanned or image-only PDF; "
                            "ingest.ocr=auto reads it by OCR (or run `ocrmypdf in.pdf out.pdf` on it first)",
                            "no_text_layer")
    share = symbol_share("".join(pages))
    if share > ILLEGIBLE_SYMBOL_SHARE:
        raise DocumentError(f"its text layer is illegible: {share:.0%} of its characters are symbols (a font "
                            "without a usable Unicode map: the page shows words, the text holds dingbats); "
                            "ingest.ocr=auto reads it by OCR (or run `ocrmypdf --force-ocr in.pdf out.pdf` first)",
                            "illegible_text_layer")
    return pages


# A text layer in which more than this share of the characters are symbols (Unicode categories So, Co, Cn) is no
# text: seen in PDFs whose Type 3 fonts map every glyph to a dingbat. Real prose, formulas included (Sm), has
# almost none.
ILLEGIBLE_SYMBOL_SHARE = 0.3


def symbol_share(text: str) -> float:
    """Share of the non-space characters that are symbols, private-use or unassigned code points."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    return sum(unicodedata.category(c) in ("So", "Co", "Cn") for c in chars) / len(chars)


def repair_pdf(path: Path, out: Path) -> None:
    """Rebuild a damaged PDF (truncated, broken cross-reference table) with pikepdf, qpdf's own reconstruction,
    into `out`: the pages whose objects survive come back whole, the others come back empty."""
    import pikepdf

    with pikepdf.open(path) as pdf:
        pdf.save(out)


@contextmanager
def readable(path: Path) -> Iterator[tuple[list[str], Path, dict]]:
    """The document's raw text per page, the file to partition, and what repair did.

    A PDF that pypdf cannot read is repaired into a temporary file (removed afterwards); when pages come back
    without text, the document is a partial ingest and `pages_lost` names them (1-based). Nothing recoverable,
    or no page with text, is the usual corrupt-file skip.
    """
    tmp = None
    try:
        pages, target, info = raw_text(path), path, {}
    except DocumentError as e:
        if e.kind != "corrupt":
            raise
        tmp = Path(tempfile.mkdtemp(prefix="sling-repair-"))
        target = tmp / path.name
        try:
            repair_pdf(path, target)
            pages = check_pdf(target)
        except Exception as r:  # pikepdf raises its own types; a repaired file with no text is no better
            shutil.rmtree(tmp, ignore_errors=True)
            raise DocumentError(f"{e}; a repair kept no page with text ({type(r).__name__}: {r})", "corrupt") from r
        lost = [i for i, page in enumerate(pages, 1) if not page.strip()]
        info = {"repaired": True, "pages_lost": lost} | ({"status": "partial"} if lost else {})
        log.warning("%s was damaged: repaired, %d of %d pages kept%s", path, len(pages) - len(lost), len(pages),
                    f", pages lost: {lost}" if lost else "")
    try:
        yield pages, target, info
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def partition(path: Path, ingest: Ingest) -> list:
    _quiet_unstructured()
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        import unstructured.partition.pdf as updf

        # unstructured calls its "too complex" check with fixed thresholds and, when a page trips it, falls
        # back to hi_res (hub models) and returns nothing offline; pass our configured threshold instead.
        check = updf.is_pdf_too_complex
        check = check.func if isinstance(check, functools.partial) else check  # our own wrapper from an earlier call
        updf.is_pdf_too_complex = functools.partial(check, max_graphics_ops=ingest.max_graphics_ops)
        return updf.partition_pdf(filename=str(path), strategy=ingest.strategy, languages=["eng"])
    if suffix == ".md":
        from unstructured.partition.md import partition_md

        return partition_md(filename=str(path), languages=["eng"])
    if suffix in (".html", ".htm"):
        from unstructured.partition.html import partition_html

        return partition_html(filename=str(path), languages=["eng"])
    from unstructured.partition.text import partition_text

    return partition_text(filename=str(path), languages=["eng"])


def raw_text(path: Path) -> list[str]:
    """The document's text before partitioning, per page, for the coverage check."""
    if path.suffix.lower() == ".pdf":
        return check_pdf(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in (".html", ".htm"):
        text = re.sub(r"<(script|style|title)[^>]*>.*?</\1>", " ", text, flags=re.S | re.I)
        text = re.sub(r"<[^>]+>", " ", text)
    if not text.strip():
        raise DocumentError("empty document (no text)", "empty")
    return [text]


def running_lines(elements: list) -> set[str]:
    """Short lines repeated on at least half of three or more pages: running headers/footers that
    unstructured did not type as Header/Footer (no library call does this across pages)."""
    pages: dict[str, set] = collections.defaultdict(set)
    for el in elements:
        text = " ".join(str(el).split())
        if 0 < len(text) <= 100:
            pages[text].add(getattr(el.metadata, "page_number", None))
    n_pages = len({getattr(el.metadata, "page_number", None) for el in elements})
    return {t for t, ps in pages.items() if n_pages >= 3 and len(ps) >= max(3, n_pages / 2)}


def reference_pages(blocks: list[Block]) -> set[int]:
    """Pages whose text blocks mostly look like bibliography entries (a year, [n], doi, et al., pp.)."""
    per_page: dict[int, list[bool]] = collections.defaultdict(list)
    for b in blocks:
        if b.kind != "Title":
            per_page[b.page].append(bool(CITATION.search(b.text)))
    return {page for page, marks in per_page.items() if sum(marks) >= 0.4 * len(marks)}


def to_blocks(elements: list, drop_references: bool) -> list[Block]:
    """Body blocks in reading order. A references section is cut from its title to the end of the last
    page that still looks like a bibliography, so a file that joins several papers keeps the later ones."""
    blocks = []
    repeated = running_lines(elements)
    for el in elements:
        kind = type(el).__name__
        text = " ".join(str(el).split())
        if kind in DROP_TYPES or not text or PAGE_NUMBER.match(text) or text in repeated:
            continue
        blocks.append(Block(getattr(el.metadata, "page_number", None) or 1, kind, text))
    if not drop_references:
        return blocks
    bibliography = reference_pages(blocks)
    kept, cutting, cut_page = [], False, None
    for b in blocks:
        if b.kind == "Title" and REFERENCES.match(b.text):
            cutting, cut_page = True, b.page
            continue
        if cutting and b.page != cut_page and b.page not in bibliography:
            cutting = False
        if cutting:
            cut_page = b.page if b.page in bibliography else cut_page
            continue
        kept.append(b)
    return kept


def split_long(text: str, max_chars: int) -> list[str]:
    """Split on sentence boundaries into pieces of at most max_chars (a longer sentence stays whole)."""
    if len(text) <= max_chars:
        return [text]
    pieces, current = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def continues_sentence(buf: list[Block], title: Block) -> bool:
    """unstructured's fast strategy types the short last line of a paragraph as a Title; it belongs to the
    text before it when that text has not finished its sentence or the "title" starts in lower case."""
    full_sentence = title.text[-1:] in ".!?" and len(title.text.split()) >= 5  # headings rarely end so
    if not buf:
        return full_sentence
    return not SENTENCE_END.search(buf[-1].text) or title.text[:1].islower() or full_sentence


def merge_paragraphs(blocks: list[Block], min_chars: int, max_chars: int) -> tuple[list[dict], int]:
    """Merge body fragments into paragraphs; a title or a finished sentence of enough length ends one."""
    paragraphs, short = [], 0
    buf: list[Block] = []

    def flush():
        nonlocal short
        if not buf:
            return
        text = " ".join(b.text for b in buf)
        kinds = sorted({b.kind for b in buf})
        page = buf[0].page
        buf.clear()
        for piece in split_long(text, max_chars):
            if len(piece) < min_chars:
                short += 1
                continue
            paragraphs.append({"page": page, "element_types": kinds, "text": piece})

    for b in blocks:
        if b.kind == "Title" and len(b.text) < 120 and not continues_sentence(buf, b):
            flush()
            continue
        if b.kind == "Title" and not buf and paragraphs and len(b.text) < min_chars:
            paragraphs[-1]["text"] += " " + b.text  # the last line of the paragraph just ended
            continue
        buf.append(b)
        if SENTENCE_END.search(b.text) and sum(len(x.text) for x in buf) >= min_chars:
            flush()
    flush()
    return paragraphs, short


def coverage(raw_pages: list[str], paragraphs: list[dict]) -> float:
    """Share of the raw text's words (with multiplicity) that occur in the paragraphs."""
    raw = collections.Counter(WORD.findall(" ".join(raw_pages).lower()))
    got = collections.Counter(WORD.findall(" ".join(p["text"] for p in paragraphs).lower()))
    total = sum(raw.values())
    return round(sum(min(n, got[w]) for w, n in raw.items()) / total, 4) if total else 0.0


def tfidf_cosine(raw_pages: list[str], paragraphs: list[dict]) -> float:
    """Cosine of the TF-IDF vectors of the raw text and of the paragraphs (the paper's extraction check)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    docs = [" ".join(raw_pages), " ".join(p["text"] for p in paragraphs)]
    try:
        vectors = TfidfVectorizer(token_pattern=WORD.pattern, lowercase=True).fit_transform(docs)
    except ValueError:  # no word at all on one side
        return 0.0
    return round(float(cosine_similarity(vectors[0], vectors[1])[0, 0]), 4)


def find_documents(corpus: Path, extensions: list[str], key: str = "data.corpus_dir") -> list[Path]:
    """The documents under `corpus` (or `corpus` itself, a file), sorted; `key` is the setting that names it."""
    if corpus.is_file():
        return [corpus]
    if not corpus.is_dir():
        raise FileNotFoundError(f"{key} {corpus} does not exist: point it at a folder of documents")
    exts = {e.lower() for e in extensions}
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def partition_checked(path: Path, ingest: Ingest) -> list:
    try:
        return partition(path, ingest)
    except Exception as e:  # unstructured raises many types on odd input; one bad file must not end the run
        raise DocumentError(f"unstructured could not partition it ({type(e).__name__}: {e}); check the file "
                            "opens in a viewer, or convert it to PDF or plain text", "partition_error") from e


def ocr_pdf(path: Path) -> list[str]:
    """Each page rendered (poppler, through pdf2image) and read by tesseract (pytesseract): the text of a scan."""
    import pytesseract
    from pdf2image import convert_from_path

    try:
        images = convert_from_path(str(path), dpi=300)
        return [pytesseract.image_to_string(image, lang="eng") for image in images]
    except (pytesseract.TesseractNotFoundError, OSError) as e:
        raise DocumentError(f"no text layer, and OCR could not run ({type(e).__name__}: {e}): install tesseract and "
                            "poppler (scripts/install.sh does), or skip scans with ingest.ocr=off", "no_text_layer") from e


def ocr_elements(path: Path, why: str = "no text layer") -> tuple[list[str], list]:
    """A scanned (or illegibly encoded) PDF's pages through OCR, partitioned as text with their page numbers."""
    from unstructured.partition.text import partition_text

    pages = ocr_pdf(path)
    if not any(p.strip() for p in pages):
        raise DocumentError(f"no text layer on any of its {len(pages)} page(s), and OCR found no text either: an "
                            "image-only PDF without legible text", "ocr_no_text")
    elements = []
    for number, text in enumerate(pages, 1):
        for element in partition_text(text=text, languages=["eng"]) if text.strip() else []:
            element.metadata.page_number = number
            elements.append(element)
    log.info("%s: %s, read by OCR (%d pages)", path, why, len(pages))
    return pages, elements


OCR_KINDS = {"no_text_layer": "no text layer", "illegible_text_layer": "illegible text layer"}


def ingest_document(path: Path, ingest: Ingest) -> tuple[list[dict], dict]:
    reading = None  # the second reading of a PDF's text layer; none for other formats and for OCR'd scans
    try:
        with readable(path) as (pages, target, repair):
            elements = partition_checked(target, ingest)
            if target.suffix.lower() == ".pdf":
                reading = second_reading(target)
    except DocumentError as e:
        if e.kind not in OCR_KINDS or ingest.ocr != "auto" or path.suffix.lower() != ".pdf":
            raise
        (pages, elements), repair = ocr_elements(path, OCR_KINDS[e.kind]), {"ocr": True, "ocr_reason": e.kind}
    if not elements:
        raise DocumentError("unstructured returned no elements although the file has text: check that the "
                            "`en_core_web_sm` spaCy package is installed (README install step) and "
                            "ingest.max_graphics_ops", "no_elements")
    blocks = to_blocks(elements, ingest.drop_references)
    paragraphs, short = merge_paragraphs(blocks, ingest.min_paragraph_chars, ingest.max_paragraph_chars)
    merged = len(paragraphs)
    cleaned, quality = clean_paragraphs(paragraphs)
    # Coverage measures extraction, so it counts every cleaned paragraph; dropping non-prose is a choice on top.
    extracted = coverage(pages, cleaned), tfidf_cosine(pages, cleaned)
    paragraphs = [p for p in cleaned if ingest.keep == "all" or "kind" not in p]
    fidelity = {}
    if reading is not None:  # measured on, and repairing, the paragraphs that are kept
        paragraphs, fidelity = check_fidelity(paragraphs, reading, ingest.min_page_fidelity)
    quality["dropped_non_prose"] = merged - len(paragraphs)
    if not paragraphs:
        raise DocumentError(f"no paragraph of at least {ingest.min_paragraph_chars} characters "
                            f"({len(elements)} elements, {short} too short, {merged - len(paragraphs)} not prose); "
                            "lower ingest.min_paragraph_chars, or keep non-prose with ingest.keep=all?", "no_paragraphs")
    stats = {"elements": len(elements), "element_types": dict(collections.Counter(type(e).__name__ for e in elements)),
             "paragraphs": len(paragraphs), "dropped_short": short, "pages": len(pages),
             "coverage": extracted[0], "tfidf_cosine": extracted[1], **quality, **fidelity,
             "language": detect_language(" ".join(p["text"] for p in paragraphs)), **repair}
    return paragraphs, stats


def clean_paragraphs(paragraphs: list[dict]) -> tuple[list[dict], dict]:
    """Each paragraph cleaned (sling.documents.clean), a non-prose one labelled with its `kind`; and per document the share
    of paragraphs that carried a ligature, a broken hyphenation or glyph garbage (before cleaning and after), and
    the share that is not prose."""
    vocab = vocabulary([clean_glyphs(p["text"]) for p in paragraphs])
    out, marks, left, kinds = [], collections.Counter(), collections.Counter(), collections.Counter()
    for p in paragraphs:
        marks.update(k for k, v in text_flags(p["text"]).items() if v)
        text = clean_text(p["text"], vocab)
        left.update(k for k, v in text_flags(text).items() if v)
        what = paragraph_kind(text)
        kinds.update([what] if what else [])
        out.append(p | {"text": text} | ({"kind": what} if what else {}))
    n = max(len(paragraphs), 1)
    shares = {f"{k}_share{after}": round(c[k] / n, 4) for k in ("ligature", "hyphenation", "glyph_garbage")
              for after, c in (("", marks), ("_after", left))}  # before cleaning, and what cleaning left
    return out, shares | {"non_prose_share": round(sum(kinds.values()) / n, 4),
                          "non_prose": {k: kinds[k] for k in CLEAN_KINDS}}


def code_version() -> str:
    """Cached paragraphs are only valid for the code that made them: the source of this module, the cleaner, the
    fidelity check and the language detector."""
    here = Path(__file__).resolve().parent
    return sha256_text("".join((here / f).read_text() for f in ("read.py", "clean.py", "fidelity.py", "language.py")))


def document_settings(ingest: Ingest) -> dict:
    """The resolved ingest section without `workers`: how many processes never changes a document's paragraphs, so
    it is neither in the cache key nor in the manifest (a 1-worker and a 2-worker run give the same bytes)."""
    return {k: v for k, v in OmegaConf.to_container(ingest, resolve=True).items() if k != "workers"}


def cache_file(cache: Path, digest: str, settings: dict, code: str) -> Path:
    key = sha256_text(json.dumps({"sha256": digest, "ingest": settings, "code": code}, sort_keys=True))
    return cache / f"{key}.json"


def ingest_cached(path: str, settings: dict, target: str) -> dict:
    """One document in a worker process (spawn-safe: plain arguments, config rebuilt here), its result written to
    the cache the moment it is done, so a run killed half-way keeps every finished document."""
    ingest = OmegaConf.create(settings)
    try:
        paragraphs, stats = ingest_document(Path(path), ingest)
        result = {"paragraphs": paragraphs, "stats": stats}
    except DocumentError as e:
        result = {"error": {"kind": e.kind, "message": str(e)}}
    result = json.loads(json.dumps(result))  # the same types whether fresh or read back from the cache
    # A scan that could not be OCR'd may read once OCR is installed: not kept. One that OCR read and found no text in
    # ("ocr_no_text", a logo or a blank scan) is kept, so a re-run does not OCR it again.
    if result.get("error", {}).get("kind") not in OCR_KINDS:
        write_json(target, result)
    return result


def work_estimate(path: Path) -> float:
    """How long a document takes to partition, roughly: a PDF's page count (PDFium opens it in milliseconds), else
    its size in pages of about 3,000 bytes."""
    if path.suffix.lower() == ".pdf":
        import pypdfium2 as pdfium

        try:
            doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            return 1.0
        try:
            return float(len(doc))
        finally:
            doc.close()
    return path.stat().st_size / 3000


def ingest_all(files: list[Path], digests: dict[Path, str], ingest: Ingest,
               cache_dir: str) -> tuple[dict[Path, dict], dict]:
    """Every distinct document's result, from the cache or partitioned in `ingest.workers` processes.
    ProcessPoolExecutor, not threads: partitioning is CPU-bound Python, held by the GIL. The largest documents are
    submitted first (longest-processing-time scheduling): a long one started last would leave one worker alone on
    it at the end. The order of the results, and so of the output, is the folder's, whatever the schedule."""
    settings = document_settings(ingest)
    cache, code = resolve_path(cache_dir) / "ingest", code_version()
    cache.mkdir(parents=True, exist_ok=True)
    results, todo, first = {}, {}, {}
    for path in files:
        first.setdefault(digests[path], path)
    for digest, path in first.items():
        target = cache_file(cache, digest, settings, code)
        if target.exists():
            results[path] = read_json(target)
        else:
            todo[path] = target
    counts = {"partitioned": len(todo), "cached": len(results)}
    log.info("ingest: %d documents to partition, %d from the cache", counts["partitioned"], counts["cached"])
    workers = min(ingest.workers or os.cpu_count() or 1, max(len(todo), 1))
    bar = tqdm(total=len(first), initial=len(results), desc="ingest", unit="doc")
    if workers == 1:
        for path, target in todo.items():
            results[path] = ingest_cached(str(path), settings, str(target))
            bar.update()
    else:
        largest_first = sorted(todo, key=lambda p: (-work_estimate(p), str(p)))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(ingest_cached, str(p), settings, str(todo[p])): p for p in largest_first}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    bar.close()
    return {path: results[first[digests[path]]] for path in files}, counts


def fidelity_metrics(ok: list[dict]) -> dict:
    """Over the documents with a second reading: the share of their words it never produces, before and after repair
    (words pooled), the pages and words repaired, and the same per document."""
    checked = [m for m in ok if "fidelity_words" in m]
    words = sum(m["fidelity_words"] for m in checked)
    share = lambda key: round(sum(m[key] for m in checked) / words, 5) if words else None  # noqa: E731
    return {"absent_share_before": share("fidelity_absent_before"), "absent_share": share("fidelity_absent"),
            "pages_repaired": sum(m["pages_repaired"] for m in checked),
            "words_repaired_from_reading": sum(m["words_repaired_from_reading"] for m in checked),
            "ligature_repairs": sum(m["ligature_repairs"] for m in checked),
            "fidelity_by_document": {m["document"]: {k: m[k] for k in FIDELITY_KEYS} for m in checked}}


def language_metrics(ok: list[dict]) -> dict:
    """How many documents are in each language, and each document's."""
    return {"languages": dict(sorted(collections.Counter(str(m["language"]) for m in ok).items())),
            "language_by_document": {m["document"]: m["language"] for m in ok}}

