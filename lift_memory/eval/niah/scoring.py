"""Scoring answers against the needle: required keywords, case-insensitive, as fraction found."""

from __future__ import annotations

import re
from collections.abc import Iterable


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def keyword_score(answer: str, keywords: Iterable[str]) -> float:
    """Fraction of ``keywords`` that occur in ``answer`` (whitespace and case ignored); 1.0 for no keywords."""
    keywords = [_normalize(k) for k in keywords]
    if not keywords:
        return 1.0
    text = _normalize(answer)
    return sum(k in text for k in keywords) / len(keywords)


class LLMJudge:
    """Scores an answer with a chat model: any object whose ``invoke(prompt)`` returns a message with
    ``.content`` (every LangChain chat model) or a string.

    The judge sees the prompt, the answer and the needle, and replies with a number between 0 and 1; a reply
    without a number scores 0 (and is counted in ``unparsed``).

    Example::

        from langchain_openai import ChatOpenAI
        run_grid(config, "out", judge=LLMJudge(ChatOpenAI(model="gpt-4o-mini")))
    """

    PROMPT = (
        "You grade answers for a needle-in-a-haystack test.\n"
        "Hidden fact: {needle}\nPrompt: {prompt}\nAnswer: {answer}\n"
        "How well does the answer reproduce the hidden fact? Reply with one number from 0 (not at all) to 1 (fully)."
    )

    def __init__(self, model) -> None:
        self.model = model
        self.unparsed = 0

    def __call__(self, prompt: str, answer: str, needle) -> float:
        reply = self.model.invoke(self.PROMPT.format(needle=needle.text, prompt=prompt, answer=answer))
        text = getattr(reply, "content", reply)
        match = re.search(r"(?<![\d.])(0(?:\.\d+)?|1(?:\.0+)?)(?![\d.])", str(text))
        if match is None:
            self.unparsed += 1
            return 0.0
        return float(match.group(1))
