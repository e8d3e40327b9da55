"""Text -> tokens with offsets -> overlapping segments and sentence-anchored windows.

LIFT (arXiv 2412.13626, section 3.1) trains on segments of length ``l`` that overlap their neighbours, so the
model can chain them in order. The last segment here ends exactly at the document's end and starts early
enough to keep at least the configured overlap; no short tail segments.

Long overlapping segments alone teach the model a fact only after its exact preceding text. The short
windows that start at every sentence start (re-tokenized from there, exactly as a prompt that starts with
that sentence would be) are what make recall from a bare prompt work.

This module knows tokenizers (anything with the Hugging Face fast-tokenizer call signature) and nothing about
models or training.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from lift_memory.errors import ConfigError, ModelLoadError
from lift_memory.types import Segment

# A sentence ends at . ! or ? (plus closing quotes or brackets) followed by whitespace; a blank line ends
# a paragraph, heading or code block.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n[ \t]*\n\s*")


def sentence_starts(text: str) -> list[int]:
    """Character offsets where sentences (or paragraphs) start, ascending, first non-space included."""
    first = len(text) - len(text.lstrip())
    starts = [first] if first < len(text) else []
    for match in _SENTENCE_BREAK.finditer(text):
        if starts and starts[-1] < match.end() < len(text):
            starts.append(match.end())
    return starts


def overlapping_spans(n_tokens: int, length: int, overlap: int) -> list[tuple[int, int]]:
    """Token spans ``[start, end)`` of length ``length`` covering ``range(n_tokens)``.

    Neighbours overlap by at least ``overlap`` tokens; the last span ends at ``n_tokens``. A document shorter
    than ``length`` is one span.
    """
    if length < 1 or not 0 <= overlap < length:
        raise ConfigError(f"need 0 <= overlap < length, got length={length}, overlap={overlap}")
    if n_tokens <= length:
        return [(0, n_tokens)] if n_tokens else []
    stride = length - overlap
    starts = [*list(range(0, n_tokens - length, stride)), n_tokens - length]
    return [(s, s + length) for s in starts]


@dataclass(frozen=True)
class TokenizedDocument:
    """A document and its tokens, each token with its ``(start, end)`` character offsets."""

    text: str
    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.ids)

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        """Character span of the tokens ``[start, end)``."""
        return self.offsets[start][0], self.offsets[end - 1][1]

    def ends(self, head: int, tail: int) -> tuple[int, int]:
        """Where the first ``head`` tokens end and the last ``tail`` tokens start (characters): the one cut of a
        head-and-tail excerpt, for prompts and training examples alike."""
        n = len(self.ids)
        return (self.offsets[head - 1][1] if head > 0 else 0), (
            self.offsets[n - tail][0] if tail > 0 else len(self.text)
        )

    def token_at(self, char: int) -> int:
        """Index of the token covering character ``char`` (the last one starting at or before it); ``len(self)``
        for a character past the last token."""
        if self.offsets and char >= self.offsets[-1][1]:
            return len(self.ids)
        return max(0, bisect.bisect_right(self.offsets, (char, float("inf"))) - 1)


def tokenize(text: str, tokenizer) -> TokenizedDocument:
    """Tokenize ``text`` without special tokens, keeping character offsets (needs a fast tokenizer)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{type(tokenizer).__name__} gives no character offsets; load the model's fast tokenizer")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return TokenizedDocument(text, tuple(enc["input_ids"]), tuple(map(tuple, enc["offset_mapping"])))


@dataclass(frozen=True)
class Segmenter:
    """Cuts a tokenized document into overlapping segments and sentence-anchored windows.

    Args:
        length: tokens per segment (already capped to what the model can take).
        overlap: tokens shared by neighbouring segments.
        window: tokens per sentence-anchored window; 0 makes none.
    """

    length: int
    overlap: int
    window: int = 64

    @classmethod
    def for_model(cls, length: int, overlap_ratio: float, window: int, max_length: int) -> Segmenter:
        """Segmenter with ``length`` capped to ``max_length`` and the overlap as a fraction of the result."""
        length = min(length, max_length)
        return cls(length=length, overlap=round(overlap_ratio * length), window=min(window, length))

    def segments(self, doc: TokenizedDocument) -> list[Segment]:
        """The overlapping segments of ``doc``, in document order."""
        return [
            Segment("segment", doc.ids[s:e], *doc.char_span(s, e), token_start=s, token_end=e)
            for s, e in overlapping_spans(len(doc), self.length, self.overlap)
        ]

    def windows(self, doc: TokenizedDocument, tokenizer) -> list[Segment]:
        """One window per sentence start, re-tokenized from that start, ``self.window`` tokens at most."""
        if self.window <= 0 or not len(doc):
            return []
        starts = sentence_starts(doc.text)
        pieces = []
        for char in starts:
            # Enough text for `window` tokens: the document's own tokens, plus slack for re-tokenization.
            last = min(doc.token_at(char) + self.window + 8, len(doc)) - 1
            pieces.append(doc.text[char : doc.offsets[last][1]])
        enc = tokenizer(pieces, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        windows = []
        for char, ids, offsets in zip(starts, enc["input_ids"], enc["offset_mapping"], strict=True):
            ids, offsets = ids[: self.window], offsets[: self.window]
            if len(ids) >= 2:
                windows.append(Segment("window", tuple(ids), char, char + offsets[-1][1]))
        return windows
