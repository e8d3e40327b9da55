"""Usage on every call: tokens, seconds and peak memory in the record, the Answer and --json."""

from __future__ import annotations

import subprocess
import sys

import pytest
from lift_test_helpers import TEXT, HashEmbedder

from lift_memory import LiftMemory

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resident memory is read from /proc")


SPIKE = """
import time
from lift_memory.usage import PeakMemory, resident_mb
before = resident_mb()
with PeakMemory(interval=0.001) as peak:
    spike = bytearray(300 * 2**20)
    for i in range(0, len(spike), 4096):
        spike[i] = 1  # touched: resident
    time.sleep(0.05)
    del spike
print(before, peak.mb, resident_mb())
"""


@linux
def test_peak_memory_sees_a_spike_that_is_gone_by_the_end():
    # In a fresh process: a long-lived one may serve the spike from pages it already holds.
    done = subprocess.run([sys.executable, "-c", SPIKE], capture_output=True, text=True, check=True)
    before, peak, after = map(float, done.stdout.split())
    assert peak >= before + 250 and after < peak - 200


@linux
def test_memorize_and_ask_report_what_they_cost(tmp_path, tiny_model_dir, fast_config):
    memory = LiftMemory(fast_config, root=tmp_path, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    record = memory.memorize(TEXT, doc_id="proverbs")
    usage = record.usage
    assert usage.tokens_trained == record.train.tokens > 0 and usage.tokens_read == record.n_tokens
    assert usage.seconds > 0 and usage.peak_memory_mb > 50 and usage.memory_kind == "rss"
    assert memory.get("proverbs").usage == usage  # stored with the memory
    short = memory.memorize("A short note.", doc_id="note")
    assert short.usage.tokens_trained == 0 and short.usage.peak_memory_mb is None
    answer = memory.ask("What saves nine?", "proverbs")
    assert answer.usage.tokens_read == answer.prompt_tokens and answer.usage.tokens_generated == answer.generated_tokens
    assert answer.usage.seconds >= answer.timings["generate"] and answer.usage.peak_memory_mb > 50
    assert answer.to_dict()["usage"]["tokens_read"] == answer.prompt_tokens  # what --json prints
