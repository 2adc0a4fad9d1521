"""The registered student as an MLflow pyfunc model: what `mlflow.pyfunc.load_model("models:/sling-domain/<version>")`
builds and asks.

    model = mlflow.pyfunc.load_model("models:/sling-domain/latest")
    model.predict(pd.DataFrame({"question": ["What is the nmpsj command for?"]}))     # -> ["...answer..."]
    model.predict(pd.DataFrame({"question": [q], "context": [retrieved_chunks]}))   # with RAG context

An MLflow model-from-code file: `sling.tracking.registry` logs this file as the model's code, and MLflow runs it on loading,
so it imports no project module and loads wherever mlflow, torch, transformers and peft are installed. The model's
artifacts are the LoRA adapters (a few MB); the base model is not copied into MLflow: `model_config["base_model"]` names
it (the snapshot's directory, or a hub id with `base_revision`), and the adapters are merged into it in order
(`model_config["adapters"]`), as `sling.models.loading.load_student` does. A deployment points at its own copy with
`mlflow.pyfunc.load_model(uri, model_config={"base_model": "/srv/models/base"})`. The prompt is the pipeline's own
(`rag.prompt_template` with a context, `rag.closed_book_template` without), answered by greedy decoding with
`rag.repetition_penalty` and `rag.max_new_tokens` (the `max_new_tokens` param overrides it per call).
"""
from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel


class SlingStudent(PythonModel):
    def load_context(self, context):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = dict(context.model_config)
        base = str(self.config["base_model"])
        # a directory is read as it is; anything else is a hub id at the recorded revision
        revision = None if Path(base).is_dir() else self.config.get("base_revision")
        # an exported GGUF form (sling.tracking.registry.register_export): transformers' GGUF loader dequantizes it
        gguf = {"gguf_file": self.config["gguf_file"]} if self.config.get("gguf_file") else {}
        self.tokenizer = AutoTokenizer.from_pretrained(base, revision=revision, **gguf)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(base, revision=revision, dtype=torch.float32, **gguf)
        for name in self.config.get("adapters", []):
            model = PeftModel.from_pretrained(model, context.artifacts[name]).merge_and_unload()
        self.model = model.eval()

    def prompt(self, question: str, context: str | None) -> str:
        if context:
            return self.config["prompt_template"].format(context=context, question=question)
        return self.config["closed_book_template"].format(question=question)

    def predict(self, context, model_input, params=None):
        import torch

        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        limit = int((params or {}).get("max_new_tokens") or self.config["max_new_tokens"])
        answers = []
        for row in rows:
            row = row if isinstance(row, dict) else {"question": row}
            ctx = row.get("context")
            enc = self.tokenizer(self.prompt(str(row["question"]), ctx if isinstance(ctx, str) else None),
                                 return_tensors="pt")
            with torch.inference_mode():
                out = self.model.generate(**enc, max_new_tokens=limit, do_sample=False,
                                          repetition_penalty=float(self.config["repetition_penalty"]),
                                          pad_token_id=self.tokenizer.pad_token_id)
            answers.append(self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        return answers


mlflow.models.set_model(SlingStudent())
