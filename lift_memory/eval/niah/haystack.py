"""Haystacks and needles, measured in the target model's own tokens.

A haystack is text from a folder of ``.txt`` files (default: the pydoc topics that ``builtin:tiny`` never
trained on), repeated or cut to a length in tokens. A needle goes in at the sentence start nearest to the
requested depth, where depth is a fraction in [0, 1] of the haystack's tokens (the common harness bug of
dividing a 0-1 depth by 100 again is what the tests pin down).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lift_memory.errors import ConfigError
from lift_memory.segment import sentence_starts, tokenize

DEFAULT_NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
DEFAULT_PREFIX = "The best thing to do in San Francisco is"
DEFAULT_QUESTION = "What is the best thing to do in San Francisco?"
DEFAULT_KEYWORDS = ("sandwich", "Dolores Park")


@dataclass(frozen=True)
class Needle:
    """A fact to hide: its sentence, the prefix that prompts it (completion mode), a question, and the
    keywords a correct answer contains."""

    text: str = DEFAULT_NEEDLE
    prefix: str = DEFAULT_PREFIX
    question: str = DEFAULT_QUESTION
    keywords: tuple[str, ...] = DEFAULT_KEYWORDS


EXAMPLE_NEEDLES = (
    Needle(),
    Needle(
        "The secret ingredient of the soup is smoked paprika from the old market.",
        "The secret ingredient of the soup is",
        "What is the secret ingredient of the soup?",
        ("smoked paprika",),
    ),
    Needle(
        "The night train to Vienna leaves from platform seven at midnight.",
        "The night train to Vienna leaves from",
        "Where does the night train to Vienna leave from?",
        ("platform seven",),
    ),
)
"""Three distinct needles, for benchmarks that hide several facts."""


def corpus_texts(folder: str | Path | None = None) -> list[str]:
    """Texts of every ``.txt`` file under ``folder`` (sorted by path), or the default held-out text."""
    if folder is None:
        from lift_memory.builtin import held_out_text

        return held_out_text()
    files = sorted(Path(folder).rglob("*.txt"))
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ConfigError(f"haystack folder {str(folder)!r} holds no non-empty .txt files")
    return texts


def build_haystack(tokenizer, n_tokens: int, texts: list[str]) -> str:
    """Join ``texts`` (repeated as often as needed) and cut the result to ``n_tokens`` tokens of ``tokenizer``.

    The cut falls at a token boundary; the result has exactly ``n_tokens`` tokens when re-tokenized, up to
    merges at the cut (at most a token or two).
    """
    if n_tokens < 1:
        raise ConfigError(f"haystack length must be >= 1 token, got {n_tokens}")
    joined = "\n\n".join(texts)
    doc = tokenize(joined, tokenizer)
    repeats = -(-n_tokens // max(1, len(doc)))
    if repeats > 1:
        doc = tokenize("\n\n".join([joined] * repeats), tokenizer)
    return doc.text[: doc.offsets[n_tokens - 1][1]]


def insert_needle(haystack: str, needle: str, depth: float, tokenizer) -> tuple[str, int]:
    """Insert ``needle`` at the sentence start nearest to ``depth`` (fraction of tokens, 0 = start, 1 = end).

    Returns:
        (the new text, the needle's character offset in it).
    """
    if not 0.0 <= depth <= 1.0:
        raise ConfigError(f"depth is a fraction in [0, 1], got {depth}; pass 0.5 for 50 %")
    doc = tokenize(haystack, tokenizer)
    target = round(depth * len(doc))
    candidates = [*sentence_starts(haystack), len(haystack)]
    at = min(candidates, key=lambda c: (abs(doc.token_at(c) - target), c))
    before, after = haystack[:at], haystack[at:]
    joiner_before = "" if not before or before[-1].isspace() else " "
    joiner_after = "" if not after or after[0].isspace() else " "
    text = before + joiner_before + needle + joiner_after + after
    return text, len(before) + len(joiner_before)
