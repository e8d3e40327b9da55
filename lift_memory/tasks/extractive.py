"""Tasks built from the document alone, with no language model: recall and order.

- **recall**: in a sentence, a salient span — a number, a date, a quoted string, an identifier, a name — is
  masked; the task is to produce it ("Fill in the blank ...").
- **order**: two passages far apart, which comes first; and a passage, what comes right after it.

Deterministic for a seed. Every task keeps the character span of its evidence in the document.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable

from lift_memory.segment import sentence_starts
from lift_memory.types import Task

BLANK = "____"
PROMPT_VERSION = "extractive-v1"
# Most specific first: the first pattern that matches a sentence gives its span.
_SALIENT = [
    re.compile(r"\"[^\"\n]{2,60}\"|“[^”\n]{2,60}”"),  # quoted strings
    re.compile(
        r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2} (?:January|February|March|April|May|June|July|August|"
        r"September|October|November|December) \d{4}\b"
    ),  # dates
    re.compile(r"\b[A-Za-z]+[0-9_][A-Za-z0-9_.-]*\b|\b\w+\(\)"),  # identifiers
    re.compile(r"(?<![\w.])\d[\d,.:]*\d(?![\w])|(?<![\w.])\d{2,}(?![\w])"),  # numbers
    re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?: [A-Z][a-z]+)+\b"),  # names: capitalized word runs
]


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the document's sentences (whitespace trimmed)."""
    starts = sentence_starts(text)
    spans = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        chunk = text[start:end].rstrip()
        if chunk:
            spans.append((start, start + len(chunk)))
    return spans


def recall_tasks(text: str, *, max_chars: int = 400) -> list[Task]:
    """One fill-in-the-blank task per sentence that has a salient span (sentences longer than ``max_chars``
    are skipped: the prompt would be a paragraph)."""
    tasks = []
    for start, end in sentences(text):
        sentence = text[start:end]
        if len(sentence) > max_chars:
            continue
        for pattern in _SALIENT:
            match = pattern.search(sentence)
            if match and len(match.group()) < len(sentence) // 2:
                masked = sentence[: match.start()] + BLANK + sentence[match.end() :]
                prompt = f"Fill in the blank with the words from the document:\n{masked}"
                tasks.append(Task("recall", prompt, match.group(), start + match.start(), start + match.end()))
                break
    return tasks


def _excerpt(text: str, span: tuple[int, int], max_chars: int) -> str:
    return text[span[0] : span[1]][:max_chars].strip()


def order_tasks(text: str, n: int, *, seed: int = 0, max_chars: int = 200) -> list[Task]:
    """``n`` tasks about the document's order: which of two distant passages comes first (answer ``A`` or
    ``B``), and what comes right after a passage (answer: the next sentence)."""
    spans = [s for s in sentences(text) if s[1] - s[0] >= 20]
    if len(spans) < 4:
        return []
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        if i % 2 == 0:
            a, b = sorted(rng.sample(range(len(spans)), 2))
            if b - a < len(spans) // 4:  # far apart: long-range structure
                b = min(len(spans) - 1, a + len(spans) // 2)
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            prompt = (
                "Which passage comes first in the document?\n"
                f"A: {_excerpt(text, spans[first], max_chars)}\nB: {_excerpt(text, spans[second], max_chars)}"
            )
            answer = "A" if first < second else "B"
            lo, hi = spans[min(a, b)], spans[max(a, b)]
            tasks.append(Task("order", prompt, answer, lo[0], hi[1]))
        else:
            j = rng.randrange(0, len(spans) - 1)
            prompt = f"What comes right after this passage in the document?\n{_excerpt(text, spans[j], max_chars)}"
            nxt = spans[j + 1]
            tasks.append(Task("order", prompt, _excerpt(text, nxt, max_chars), spans[j][0], nxt[1]))
    return tasks


class ExtractiveGenerator:
    """The offline default task generator: recall and order tasks from the text itself.

    Args:
        order_per_1k_tokens: order tasks per thousand characters / 4 (about a thousand tokens) of document.
        seed: makes the order tasks reproducible.
        exclude: prompts never to produce, e.g. recall prompts held out for evaluation.
    """

    prompt_version = PROMPT_VERSION

    def __init__(self, *, order_per_1k_tokens: float = 4.0, seed: int = 0, exclude: Iterable[str] = ()) -> None:
        self.order_per_1k_tokens, self.seed, self.exclude = order_per_1k_tokens, seed, frozenset(exclude)

    @property
    def identity(self) -> str:
        held = hashlib.sha256("\n".join(sorted(self.exclude)).encode()).hexdigest()[:8] if self.exclude else "none"
        return f"extractive(order={self.order_per_1k_tokens},seed={self.seed},exclude={held})"

    def plan(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]  # one unit: the whole document, done in one step

    async def agenerate(self, text: str, unit: tuple[int, int], attempt: int) -> list[Task]:
        n_order = max(2, round(self.order_per_1k_tokens * len(text) / 4000))
        tasks = recall_tasks(text) + order_tasks(text, n_order, seed=self.seed)
        return [t for t in tasks if t.prompt not in self.exclude]
