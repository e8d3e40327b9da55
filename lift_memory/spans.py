"""Salient spans: the exact strings a fact hangs on. One home for the patterns that both the recall tasks (which
span of a sentence to blank out) and retrieval (which phrases of a question must appear verbatim) look for.

Each pattern's first non-empty group, or else its whole match, is the span (:func:`span`).
"""

from __future__ import annotations

import re

QUOTED = re.compile(r"\"([^\"\n]{2,200})\"|“([^”\n]{2,200})”|(?<!\w)'([^'\n]{3,200})'(?!\w)")
"""Quoted strings, double or curly; single quotes only around words (an apostrophe is no quote)."""
DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2} (?:January|February|March|April|May|June|July|August|"
    r"September|October|November|December) \d{4}\b"
)
NUMBER = re.compile(r"(?<![\w.])\d[\d,.:/-]*\d(?![\w])|(?<![\w.])\d{2,}(?![\w])")
"""Numbers of two or more digits, with their separators (1,024 / 3.14 / 12:30 / 2024-05 / 3/4)."""
IDENTIFIER = re.compile(
    r"\b(?:[A-Za-z]+[0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]|[A-Za-z]+[0-9_]|[a-z]+[A-Z][A-Za-z0-9]*|[A-Z]{2,}[0-9A-Z_-]*)\b"
    r"|\b\w+\(\)"
)
"""Words with a digit or underscore inside (user_42, v1.2, AB-1234), camelCase, ALL-CAPS codes, calls (f())."""
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?: [A-Z][a-z]+)+\b")
"""Runs of capitalized words not at a sentence start (Ada Lovelace, Dolores Park)."""


def span(match: re.Match[str]) -> str:
    return next((g for g in match.groups() if g), match.group())
