"""Decoding helpers: stop strings cut across streamed pieces."""

from __future__ import annotations

import pytest

from lift_memory.generate import cut_at_stops


@pytest.mark.parametrize(
    ("pieces", "stops", "expected"),
    [
        (["Hello", " wor", "ld"], [], "Hello world"),
        (["The key", " is 42.", " END", " more"], ["END"], "The key is 42. "),
        (["The key is 4", "2.E", "N", "D after"], ["END"], "The key is 42."),  # the stop spans three pieces
        (["ab", "c"], ["bcd"], "abc"),  # a held-back start that never completes is released at the end
        (["x\nUser:", " hi"], ["\nUser:", "###"], "x"),
        (["STOP"], ["STOP"], ""),
        (["a", "b", "c"], ["", "zz"], "abc"),  # empty stop strings are ignored
    ],
)
def test_cut_at_stops(pieces, stops, expected):
    out = list(cut_at_stops(pieces, stops))
    assert "".join(out) == expected
    for stop in stops:
        if stop:
            assert all(stop[:2] not in piece or stop[:2] in expected for piece in out)


def test_cut_at_stops_stops_consuming_at_the_stop():
    consumed = []

    def pieces():
        for piece in ["one ", "two ", "three"]:
            consumed.append(piece)
            yield piece

    assert "".join(cut_at_stops(pieces(), ["two"])) == "one "
    assert consumed == ["one ", "two "]  # decoding ends at the stop: nothing more is generated
