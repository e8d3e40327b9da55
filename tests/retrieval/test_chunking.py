from __future__ import annotations

import pytest
from lift_test_helpers import TEXT, make_tokenizer

from lift_memory.errors import ConfigError
from lift_memory.retrieval.chunking import chunk_document
from lift_memory.segment import sentence_starts


@pytest.mark.parametrize(("size", "overlap"), [(16, 4), (32, 0), (40, 10), (400, 20)])
def test_chunks_keep_offsets_sentences_and_sizes(size, overlap):
    tok = make_tokenizer()
    chunks = chunk_document(TEXT, "doc", tok, size=size, overlap=overlap)
    starts = set(sentence_starts(TEXT))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert TEXT[c.char_start : c.char_end] == c.text
        assert len(tok(c.text, add_special_tokens=False)["input_ids"]) <= size + 1  # +1: re-tokenized seams
    covered = set()
    for c in chunks:
        covered.update(range(c.char_start, c.char_end))
    assert all(i in covered for i, ch in enumerate(TEXT) if not ch.isspace())  # nothing left out
    # A chunk starts at a sentence start unless its predecessor had to cut a sentence.
    for prev, c in zip(chunks, chunks[1:]):
        after_prev = len(TEXT[: prev.char_end]) + len(TEXT[prev.char_end :]) - len(TEXT[prev.char_end :].lstrip())
        assert c.char_start in starts or after_prev not in starts
    if overlap:
        for a, b in zip(chunks, chunks[1:]):
            assert not TEXT[a.char_end : b.char_start].strip()  # neighbours overlap or meet at a sentence end


def test_long_sentences_are_cut_at_token_boundaries():
    tok = make_tokenizer()
    text = "word " * 300 + "end."
    chunks = chunk_document(text, "d", tok, size=32, overlap=0)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:]):
        assert a.char_end <= b.char_start and not text[a.char_end : b.char_start].strip()  # contiguous pieces
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)


def test_ids_are_stable_and_distinct():
    tok = make_tokenizer()
    a = chunk_document(TEXT, "doc", tok, size=40, overlap=8)
    b = chunk_document(TEXT, "doc", tok, size=40, overlap=8)
    c = chunk_document(TEXT, "other", tok, size=40, overlap=8)
    assert [x.chunk_id for x in a] == [x.chunk_id for x in b]
    assert len({x.chunk_id for x in a}) == len(a)
    assert not {x.chunk_id for x in a} & {x.chunk_id for x in c}


def test_bad_sizes():
    with pytest.raises(ConfigError, match="size"):
        chunk_document(TEXT, "d", make_tokenizer(), size=4)
    with pytest.raises(ConfigError, match="overlap"):
        chunk_document(TEXT, "d", make_tokenizer(), size=16, overlap=16)
