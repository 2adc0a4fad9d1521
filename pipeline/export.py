"""Stage export@<variant>: the tuned variant as merged safetensors and GGUF (`export.gguf_types`: f16, q8_0) with its
chat template and an Ollama Modelfile, gated on answering like its adapter, and registered in MLflow's Model Registry.

    python -m pipeline.export domain            # stage export@domain, when export.variants=[domain]
    dvc exp run -S 'export.variants=[domain]'   # the stage exists only for the variants listed (default: none)
    python -m pipeline.export domain 'export.gguf_types=[f16,q8_0,q4_1]'   # a 4-bit form too (README's figures)

Writes models/export/<variant>/ (merged/, sling-<variant>-<type>.gguf, Modelfile) and metrics/export/<variant>.json:
per form the mean KL divergence of its next-token distributions from the adapter's and their top-1 agreement over
the answers of the variant's first `export.probes` benchmark prompts (the answer stage's own prompts and answers), and
per task the paired difference of rescaled cosine, form minus adapter, over the first `export.questions` held-out
benchmark questions, each form answering them through the answer stage's decoding (sling.scoring.exported), all
read back through transformers' loaders (sling.models.export). A form past `export.max_kl`, below
`export.min_top1`, or whose paired interval lies wholly below -`export.tolerance` fails the stage in one line naming
it and its figure; the export is then not written, the figures are. A passing export is registered as one
Model Registry version per form, `sling-<variant>-export-<form>`, with the figures as its tags
(sling.tracking.registry.register_export).

Load an export: `ollama create sling-domain -f models/export/domain/Modelfile`, `llama-cli -m
models/export/domain/sling-domain-q8_0.gguf`, `vllm serve models/export/domain/merged`, or
`mlflow.pyfunc.load_model("models:/sling-domain-export-q8_0/latest")`.
"""
from __future__ import annotations

from dataclasses import asdict

from sling.cli import run
from sling.config import load_config, resolve_path
from sling.errors import UserError
from sling.io import atomic_dir, read_jsonl, write_json
from sling.models.export import chat_template, check, log, measure, probes, write_forms
from sling.models.loading import VARIANTS
from sling.paths import answers_path, export_dir, export_metrics_path, produced, tasks
from sling.scoring.exported import answer_benchmark
from sling.tracking.registry import register_export
from sling.tracking.runs import log_metrics, stage_run

LOADER = "transformers (AutoModelForCausalLM; the GGUF forms through its GGUF loader, dequantized to float32)"


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in VARIANTS or not VARIANTS[argv[0]]:
        raise UserError("say which tuned variant to export: python -m pipeline.export {general|domain} [key=value ...]")
    variant, cfg = argv[0], load_config(argv[1:])
    with stage_run(f"export_{variant}", cfg):
        rows = [r for task in tasks() for r in read_jsonl(produced(answers_path(variant, task), "answer"))]
        items = probes(rows, cfg.rag.prompt_template, cfg.export.probes)
        if not items:
            raise UserError(f"the answer stage's rows for {variant} hold no answer to probe with: re-run "
                            "`dvc repro answer` (is rag.variants missing it?)")
        out = resolve_path(export_dir(variant))
        with atomic_dir(out) as tmp:
            forms = write_forms(cfg.model, cfg.rag, cfg.export, variant, tmp,
                                chat_template(cfg.rag.prompt_template, cfg.rag.closed_book_template))
            figures = answer_benchmark(cfg, variant, forms, measure(cfg.model, cfg.export, variant, forms, items))
            write_json(resolve_path(export_metrics_path(variant)), {
                "variant": variant, "loader": LOADER, "max_kl": cfg.export.max_kl, "min_top1": cfg.export.min_top1,
                "tolerance": cfg.export.tolerance,
                "forms": {f: asdict(x) | {"file": (p / (g or "")).relative_to(tmp).as_posix() or "."}
                          for (f, x), (p, g) in zip(figures.items(), forms.values())}})
            log_metrics({f: {"kl": x.kl, "top1": x.top1} | {f"{d.task}.{d.metric}_difference": d.mean
                                                            for d in x.benchmark}
                         for f, x in figures.items()}, prefix=f"export.{variant}.")
            check(figures, cfg.export, export_metrics_path(variant))
        log.info("wrote %s", out)
        register_export(cfg.model, cfg.data, cfg.rag, variant,
                        {f: (out / p.relative_to(tmp), g) for f, (p, g) in forms.items()}, figures, LOADER)


if __name__ == "__main__":
    run(main)
