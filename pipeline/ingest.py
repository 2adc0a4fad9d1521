"""Stage ingest: documents (PDF, Markdown, text, HTML) -> paragraphs with page numbers and lineage.

    python -m pipeline.ingest                                   # reads params.yaml
    python -m pipeline.ingest data.corpus_dir=~/papers ingest.on_error=fail

unstructured partitions each file (PDF with the `fast` strategy); headers, footers and page numbers are
dropped, narrative fragments are merged into paragraphs, and the references section is cut. A bad file
(encrypted, corrupt, empty, scanned without a text layer, or one that unstructured returns nothing for)
is reported by name and counted as skipped, or fails the stage with `ingest.on_error=fail`; the other
files still go through. The same content twice is ingested once. Per document, the share of the raw
page text's words that the paragraphs cover, and the TF-IDF cosine between the raw text and the
paragraphs, are written to metrics/ingest.json (the paper's extraction check). Each PDF page's words are
also checked against a second, independent reading (PDFium, sling.documents.fidelity): the share of words it never
produces is recorded, a page below `ingest.min_page_fidelity` is repaired from it, and letters lost with
ligature glyphs are restored from the document's own words. Each document's language (sling.documents.language) is
recorded in the manifest and the metrics, and on every paragraph row, where a paragraph plainly in another language
(a partly translated manual) gets its own (`paragraphs_in_another_language` counts them). Documents are partitioned largest
first, so one long document does not set the pace of a parallel run.
"""
from __future__ import annotations

import collections
import os

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.documents.clean import KINDS as CLEAN_KINDS
from sling.documents.language import paragraph_language
from sling.documents.read import (
    QUALITY_SHARES,
    DocumentError,
    document_settings,
    fidelity_metrics,
    find_documents,
    ingest_all,
    language_metrics,
    log,
)
from sling.io import provenance, sha256_file, sha256_text, write_json, write_jsonl
from sling.paths import INGEST_METRICS, MANIFEST, PARAGRAPHS
from sling.tracking.runs import log_artifact, log_metrics, stage_run


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv)
    corpus = resolve_path(cfg.data.corpus_dir)
    files = find_documents(corpus, list(cfg.ingest.extensions))
    if not files:
        raise FileNotFoundError(f"no documents with extensions {list(cfg.ingest.extensions)} under {corpus}")
    with stage_run("ingest", cfg):
        rows, manifest, seen = [], [], {}
        skipped, duplicates = collections.Counter(), 0
        other_language = collections.Counter()  # paragraphs in another language than their document's, by language
        digests = {path: sha256_file(path) for path in files}
        results, counts = ingest_all(files, digests, cfg.ingest, cfg.cache_dir)
        for path in files:
            name = os.path.relpath(path, corpus) if corpus.is_dir() else path.name
            digest = digests[path]
            entry = {"document": name, "sha256": digest}
            if digest in seen:
                duplicates += 1
                log.warning("%s: same content as %s, ingested once", name, seen[digest])
                manifest.append(entry | {"status": "duplicate", "duplicate_of": seen[digest]})
                continue
            seen[digest] = name
            if "error" in results[path]:
                kind, reason = results[path]["error"]["kind"], results[path]["error"]["message"]
                if cfg.ingest.on_error == "fail":
                    raise DocumentError(f"{path}: {reason} (or set ingest.on_error=skip)", kind)
                log.warning("skipping %s: %s", path, reason)
                skipped[kind] += 1
                manifest.append(entry | {"status": "skipped", "kind": kind, "reason": reason})
                continue
            paragraphs, stats = results[path]["paragraphs"], results[path]["stats"]
            doc_id = digest[:12]
            for i, p in enumerate(paragraphs, 1):
                language = paragraph_language(p["text"], stats["language"])  # a partly translated document's rest
                if language != stats["language"]:
                    other_language[language] += 1
                rows.append({"doc_id": doc_id, "document": name, "language": language, "page": p["page"], "para_num": i,
                             "element_types": p["element_types"], "text": p["text"],
                             "paragraph_hash": sha256_text(p["text"])[:16]} | ({"kind": p["kind"]} if "kind" in p else {}))
            manifest.append(entry | {"status": "ok", "doc_id": doc_id} | stats)
        if not rows:
            raise DocumentError(f"no paragraphs from any of the {len(files)} documents under {corpus}: "
                                f"{sum(skipped.values())} skipped ({dict(skipped)}); see the warnings above")
        if cfg.ingest.max_paragraphs:
            rows = rows[: cfg.ingest.max_paragraphs]
        n = write_jsonl(resolve_path(PARAGRAPHS), rows)
        ok = [m for m in manifest if m["status"] in ("ok", "partial")]
        metrics = {"documents": len(files), "ingested": len(ok), "skipped": sum(skipped.values()),
                   "partial": {m["document"]: m["pages_lost"] for m in ok if m["status"] == "partial"},
                   "skipped_by_reason": dict(skipped), "duplicates": duplicates, "paragraphs": n,
                   "coverage_mean": round(sum(m["coverage"] for m in ok) / len(ok), 4),
                   "coverage_min": min(m["coverage"] for m in ok),
                   "tfidf_cosine_mean": round(sum(m["tfidf_cosine"] for m in ok) / len(ok), 4),
                   "tfidf_cosine_min": min(m["tfidf_cosine"] for m in ok),
                   "non_prose": {k: sum(m["non_prose"][k] for m in ok) for k in CLEAN_KINDS},
                   "dropped_non_prose": sum(m["dropped_non_prose"] for m in ok),
                   "text_quality_by_document": {m["document"]: {k: m[k] for k in QUALITY_SHARES} for m in ok},
                   "coverage_by_document": {m["document"]: m["coverage"] for m in ok},
                   "tfidf_cosine_by_document": {m["document"]: m["tfidf_cosine"] for m in ok},
                   **fidelity_metrics(ok), **language_metrics(ok),
                   "paragraphs_in_another_language": dict(sorted(other_language.items()))}
        write_json(resolve_path(MANIFEST), {"documents": manifest, "provenance": provenance(
            "ingest", document_settings(cfg.ingest) | {"corpus_dir": str(cfg.data.corpus_dir)})})
        write_json(resolve_path(INGEST_METRICS), metrics)
        # partitioned/cached depend on the cache, not the corpus: logged, kept out of the DVC-tracked metrics file
        log_metrics({k: v for k, v in metrics.items() if not k.endswith("_by_document")} | counts, prefix="ingest.")
        log_artifact(resolve_path(MANIFEST))
        log.info("%d paragraphs from %d/%d documents (%d skipped, %d duplicates), coverage %.3f",
                 n, len(ok), len(files), metrics["skipped"], duplicates, metrics["coverage_mean"])


if __name__ == "__main__":
    run(main)

