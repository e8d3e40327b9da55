"""The heap trim returns freed memory to the operating system (glibc, Linux), and only past its slack."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from lift_memory.train.heap import HeapTrim
from lift_memory.usage import resident_mb

trim = HeapTrim()
pytestmark = pytest.mark.skipif(not trim.available, reason="needs glibc's malloc_trim (Linux)")

BLOCK = 96 * 1024  # under glibc's smallest mmap threshold: always carved from the heap
BLOCKS = 600


def _fragmented_heap(libc) -> list[int]:
    """Allocate and touch BLOCKS heap blocks, free every other one; the freed ones sit between live blocks,
    where ``free`` alone never returns their pages. Returns the live blocks."""
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for b in blocks:
        ctypes.memset(b, 1, BLOCK)
    for b in blocks[::2]:
        libc.free(b)
    return blocks[1::2]


@pytest.fixture
def libc():
    lib = ctypes.CDLL(ctypes.util.find_library("c"))
    lib.malloc.restype, lib.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    lib.free.argtypes = [ctypes.c_void_p]
    return lib


def test_a_trim_returns_the_pages_of_freed_blocks_between_live_ones(libc):
    heap = HeapTrim(slack=0)
    heap.floor = 0  # any size is growth, whatever the heap held before: the next call trims
    live = _fragmented_heap(libc)
    before = resident_mb()
    heap.maybe()
    try:
        assert heap.trims == 1
        freed_mb = BLOCKS // 2 * BLOCK / 2**20
        assert before - resident_mb() > freed_mb / 2, "the freed blocks' pages stayed resident"
    finally:
        for b in live:
            libc.free(b)


def test_no_trim_until_the_process_grew_by_the_slack(libc):
    heap = HeapTrim(slack=2**20)  # a terabyte
    heap.maybe()
    live = _fragmented_heap(libc)
    before = resident_mb()
    heap.maybe()
    try:
        assert heap.trims == 0
        assert resident_mb() > before - BLOCKS // 4 * BLOCK / 2**20
    finally:
        for b in live:
            libc.free(b)
