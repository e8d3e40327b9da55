from __future__ import annotations

import pytest
from lift_test_helpers import TEXT, make_tokenizer

from lift_memory.errors import ConfigError, ModelLoadError
from lift_memory.segment import Segmenter, overlapping_spans, sentence_starts, tokenize


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 100, 127, 128, 129, 1000, 4097])
@pytest.mark.parametrize(("length", "overlap"), [(64, 24), (64, 0), (16, 15), (2048, 768)])
def test_spans_cover_every_token_with_overlap_and_no_tail(n, length, overlap):
    spans = overlapping_spans(n, length, overlap)
    covered = set()
    for start, end in spans:
        covered.update(range(start, end))
    assert covered == set(range(n))
    assert spans[0][0] == 0 and spans[-1][1] == n  # the last segment ends exactly at the end
    assert all(end - start == min(length, n) for start, end in spans)  # no short tail segments
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        assert s0 < s1 and e0 - s1 >= overlap  # each neighbour overlaps by at least `overlap`


def test_lift_default_overlap_is_three_eighths():
    seg = Segmenter.for_model(2048, 0.375, 64, max_length=100_000)
    assert (seg.length, seg.overlap) == (2048, 768)
    capped = Segmenter.for_model(2048, 0.375, 64, max_length=511)
    assert (capped.length, capped.overlap) == (511, 192)


def test_bad_overlap_is_a_config_error():
    with pytest.raises(ConfigError, match="overlap"):
        overlapping_spans(10, 4, 4)


def test_sentence_starts():
    text = "  First one. Second!  Third?\n\nFourth line\nstill fourth. 3.14 is pi."
    starts = sentence_starts(text)
    assert [text[s : s + 6] for s in starts] == ["First ", "Second", "Third?", "Fourth", "3.14 i"]


def test_segments_follow_the_documents_tokens():
    tok = make_tokenizer()
    doc = tokenize(TEXT, tok)
    seg = Segmenter(length=40, overlap=15, window=12)
    segments = seg.segments(doc)
    for s in segments:
        assert s.token_ids == doc.ids[s.token_start : s.token_end]
        assert TEXT[s.char_start : s.char_end] == tok.decode(s.token_ids)


def test_windows_start_at_sentence_starts_and_match_a_fresh_prompt():
    tok = make_tokenizer()
    doc = tokenize(TEXT, tok)
    windows = Segmenter(length=40, overlap=15, window=12).windows(doc, tok)
    starts = set(sentence_starts(TEXT))
    assert len(windows) == len(starts)
    for w in windows:
        assert w.char_start in starts
        assert 2 <= len(w.token_ids) <= 12
        # Tokenized as a prompt that starts at this sentence would be: the bare-prompt recall condition.
        fresh = tok(TEXT[w.char_start : w.char_end], add_special_tokens=False)["input_ids"]
        assert tuple(fresh) == w.token_ids


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(ModelLoadError, match="fast tokenizer"):
        tokenize("x", Slow())
