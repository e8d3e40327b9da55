"""Documents -> retrieval chunks that respect sentence boundaries and keep their character offsets.

A chunk is a run of whole sentences of at most ``size`` tokens; the next chunk starts at the earliest sentence
start within the chunk's last ``overlap`` tokens (or right after it when there is none: sentences stay whole).
A sentence longer than ``size`` is cut at token boundaries, and its pieces overlap by ``overlap`` tokens. Chunk ids derive from the document id, the position and the text, so adding the same document
again yields the same ids (idempotent upserts).

Token counts come from any Hugging Face fast tokenizer (the base model's, or the embedder's). This module
knows nothing about stores or embeddings.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass

from lift_memory.errors import ConfigError
from lift_memory.segment import TokenizedDocument, sentence_starts, tokenize


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable piece of a document: ``text == document[char_start:char_end]``."""

    doc_id: str
    index: int
    text: str
    char_start: int
    char_end: int

    @property
    def chunk_id(self) -> str:
        digest = hashlib.sha256(f"{self.doc_id}\x00{self.char_start}\x00{self.text}".encode()).hexdigest()
        return f"{self.doc_id}:{self.index}:{digest[:12]}"


def _spans(doc: TokenizedDocument, size: int, overlap: int) -> list[tuple[int, int]]:
    """Token spans of the chunks: whole sentences up to ``size`` tokens, ``overlap`` tokens shared."""
    n = len(doc)
    starts = sorted({doc.token_at(c) for c in sentence_starts(doc.text)} - {n})
    spans: list[tuple[int, int]] = []
    begin = 0
    while begin < n:
        if begin + size >= n:
            end = n
        else:  # the furthest sentence start that keeps the chunk within `size` tokens (and over half full) ends it
            i = bisect.bisect_right(starts, begin + size) - 1
            end = starts[i] if i >= 0 and starts[i] > begin + size // 2 else begin + size  # else: cut mid-sentence
        spans.append((begin, end))
        if end >= n:
            break
        if not overlap:
            begin = end
            continue
        # The next chunk starts at the earliest sentence start among the last `overlap` tokens; if there is
        # none, at the end when it is a sentence start, else (a sentence was cut) `overlap` tokens before it.
        i = bisect.bisect_left(starts, end - overlap)
        if i < len(starts) and starts[i] < end:
            nxt = starts[i]
        else:
            nxt = end if i < len(starts) and starts[i] == end else end - overlap
        begin = max(nxt, begin + 1)
    return spans


def chunk_document(text: str, doc_id: str, tokenizer, *, size: int = 128, overlap: int = 24) -> list[Chunk]:
    """Cut ``text`` into :class:`Chunk` s of at most ``size`` tokens with about ``overlap`` tokens shared."""
    if size < 8 or not 0 <= overlap < size:
        raise ConfigError(f"chunking needs size >= 8 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    doc = tokenize(text, tokenizer)
    chunks = []
    for i, (begin, end) in enumerate(_spans(doc, size, overlap)):
        start_char = doc.offsets[begin][0]
        end_char = doc.offsets[end - 1][1]
        while start_char < end_char and text[start_char].isspace():  # byte-level tokens carry a leading space
            start_char += 1
        while end_char > start_char and text[end_char - 1].isspace():
            end_char -= 1
        chunks.append(Chunk(doc_id, i, text[start_char:end_char], start_char, end_char))
    return chunks
