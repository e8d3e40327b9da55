"""Token counting for prompts sent to other models.

A remote generator's window is counted in its own tokens: tiktoken's encodings for OpenAI-style models. Loading
an encoding downloads it the first time, which fails offline, so encodings load lazily (never at import) and,
when one cannot be loaded, counting falls back to a given Hugging Face tokenizer (the base model's) with one
warning that says how to fix it. The counter records which path it took.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any


@cache
def _encoding(name: str) -> Any | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        return tiktoken.get_encoding(name)
    except (OSError, ValueError, KeyError) as exc:  # offline (requests/urllib errors are OSErrors) or unknown
        warnings.warn(
            f"tiktoken encoding {name!r} is unavailable ({type(exc).__name__}); counting with the base model's "
            "tokenizer instead. To use it offline, download it once and set TIKTOKEN_CACHE_DIR.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


@dataclass
class TokenCounter:
    """Counts tokens with tiktoken's ``encoding`` when it can be loaded, else with ``fallback``.

    Args:
        encoding: a tiktoken encoding name (``cl100k_base``, ``o200k_base``); None: use ``fallback`` only.
        fallback: a Hugging Face tokenizer, or any ``str -> int`` counter.
    """

    encoding: str | None = "cl100k_base"
    fallback: Any = None
    path: str = field(default="", init=False)
    """Which counter was used: ``tiktoken:<name>``, ``tokenizer`` or ``characters/4`` (nothing else was there)."""
    _count: Callable[[str], int] | None = field(default=None, init=False, repr=False)

    def _counter(self) -> Callable[[str], int]:
        enc = _encoding(self.encoding) if self.encoding else None
        if enc is not None:
            self.path = f"tiktoken:{self.encoding}"
            return lambda text: len(enc.encode(text, disallowed_special=()))
        if callable(self.fallback) and not hasattr(self.fallback, "encode"):
            self.path = "tokenizer"
            return self.fallback
        if self.fallback is not None:
            self.path = "tokenizer"
            return lambda text: len(self.fallback(text, add_special_tokens=False)["input_ids"])
        self.path = "characters/4"
        return lambda text: (len(text) + 3) // 4

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if self._count is None:
            self._count = self._counter()
        return self._count(text)

    def truncate(self, text: str, limit: int, *, keep: str = "end") -> str:
        """The longest part of ``text`` within ``limit`` tokens: its end (``keep="end"``) or its start."""
        if self.count(text) <= limit:
            return text
        lo, hi = 0, len(text)
        while lo < hi:  # binary search on characters kept
            mid = (lo + hi + 1) // 2
            piece = text[len(text) - mid :] if keep == "end" else text[:mid]
            lo, hi = (mid, hi) if self.count(piece) <= limit else (lo, mid - 1)
        return text[len(text) - lo :] if keep == "end" else text[:lo]
