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
