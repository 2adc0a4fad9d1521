"""One record shape for both training sets: the paper's Alpaca-style `text` and chat `messages`,
built from the same prompt and response so the two can never disagree."""
from __future__ import annotations

from sling.schema import Dataset, Rag


def record(prompt: str, response: str, **lineage) -> dict:
    return {"prompt": prompt, "response": response, "text": f"{prompt} {response}",
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
            **lineage}


def general_prompt(dataset: Dataset, instruction: str, input_text: str) -> str:
    return dataset.general_template.format(instruction=instruction, input=input_text or "(none)")


def domain_prompt(dataset: Dataset, rag: Rag, paragraph: str, question: str) -> str:
    """The RAG answering prompt with the source paragraph as the context."""
    context = dataset.domain_context.format(paragraph=paragraph)
    return rag.prompt_template.format(context=context, question=question)
