"""One record shape for both training sets: the paper's Alpaca-style `text` and chat `messages`,
built from the same prompt and response so the two can never disagree."""
from __future__ import annotations

from omegaconf import DictConfig


def record(prompt: str, response: str, **lineage) -> dict:
    return {"prompt": prompt, "response": response, "text": f"{prompt} {response}",
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
            **lineage}


def general_prompt(cfg: DictConfig, instruction: str, input_text: str) -> str:
    return cfg.dataset.general_template.format(instruction=instruction, input=input_text or "(none)")


def domain_prompt(cfg: DictConfig, paragraph: str, question: str) -> str:
    """The RAG answering prompt with the source paragraph as the context."""
    context = cfg.dataset.domain_context.format(paragraph=paragraph)
    return cfg.rag.prompt_template.format(context=context, question=question)
