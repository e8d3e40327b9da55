"""Prompts that fit the window: a question plus as much context as the budget allows.

The budget is the model's window minus the generation budget minus the rendered question. Context comes from
a function of a token budget (for a document: its head and tail halves, as LIFT prompts at test time), and
the whole prompt is rendered the way the model expects it: its chat template when the tokenizer has one,
else ``context``, a blank line and the question (completion style, right for base and tiny models). The
rendered prompt is measured, never estimated, and shrunk until it fits.

This module knows tokenizers and text; nothing about models, adapters or retrieval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lift_memory.errors import ConfigError
from lift_memory.segment import TokenizedDocument

ELLIPSIS = "\n...\n"
CHAT_INSTRUCTION = (
    "Answer the question using the document.\n\n<document>\n{context}\n</document>\n\nQuestion: {question}"
)


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: its token ids, and the context text it carries."""

    ids: list[int]
    context: str
    context_tokens: int


def render(tokenizer, context: str, question: str, prefix_ids: tuple[int, ...]) -> list[int]:
    """Token ids of the prompt for ``question`` with ``context`` (possibly empty)."""
    if getattr(tokenizer, "chat_template", None):
        content = CHAT_INSTRUCTION.format(context=context, question=question) if context else question
        return list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )
    text = f"{context}\n\n{question}" if context else question
    return list(prefix_ids) + tokenizer(text, add_special_tokens=False)["input_ids"]


def head_tail(doc: TokenizedDocument, budget: int) -> str:
    """The document if it fits ``budget`` tokens, else its first and last ``budget/2`` tokens joined by '...'."""
    if budget <= 0:
        return ""
    if len(doc) <= budget:
        return doc.text
    head, tail = budget - budget // 2, budget // 2
    head_text = doc.text[: doc.offsets[head - 1][1]] if head else ""
    tail_text = doc.text[doc.offsets[len(doc) - tail][0] :] if tail else ""
    return head_text + ELLIPSIS + tail_text


def fit(
    tokenizer,
    question: str,
    context_for: Callable[[int], str],
    limit: int,
    prefix_ids: tuple[int, ...] = (),
) -> Prompt:
    """Render ``question`` with the largest context from ``context_for(budget)`` whose prompt fits ``limit``.

    Raises:
        ConfigError: the question alone does not fit.
    """
    bare = len(render(tokenizer, "", question, prefix_ids))
    if bare > limit:
        raise ConfigError(
            f"the question takes {bare} tokens but only {limit} fit beside the generation budget; "
            "shorten it or lower max_new_tokens"
        )
    budget = limit - bare - 8  # room for the template's own context scaffolding
    while True:
        context = context_for(max(budget, 0))
        ids = render(tokenizer, context, question, prefix_ids)
        if len(ids) <= limit or not context:
            return Prompt(ids, context, max(0, len(ids) - bare))
        # Re-tokenizing joined pieces can merge or split tokens at the seams: shrink by the excess and retry.
        budget -= len(ids) - limit
