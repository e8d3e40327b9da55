"""End to end on builtin:tiny: a needle memorized into the adapter comes back from a bare prompt."""

from __future__ import annotations

import pytest

from lift_memory import LiftMemory, MemoryConfig
from lift_memory.config import TrainConfig
from lift_memory.eval.niah.haystack import Needle, build_haystack, corpus_texts, insert_needle
from lift_memory.eval.niah.scoring import keyword_score
from lift_memory.eval.probe import RecallProbe


@pytest.mark.slow
def test_needle_is_recalled_from_a_bare_prompt_after_memorizing(builtin_dir, tmp_path):
    memory = LiftMemory(MemoryConfig(train=TrainConfig(max_steps=200)), root=tmp_path, progress=False)
    needle = Needle()
    tok = memory.engine.tokenizer
    text, _ = insert_needle(build_haystack(tok, 2048, corpus_texts()), needle.text, 0.5, tok)
    assert keyword_score(memory.complete(needle.prefix), needle.keywords) == 0.0
    probe = RecallProbe(memory, needle, every=10, stop_on_recall=True)
    record = memory.memorize(text, callbacks=[probe])
    assert record.train.stop_reason == "callback" and probe.recalled_at_step is not None
    assert keyword_score(memory.complete(needle.prefix, record.doc_id), needle.keywords) == 1.0
    assert memory.perplexity(text, record.doc_id) < memory.perplexity(text) / 2
