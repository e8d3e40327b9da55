"""The held-out question set and the route comparison, on the tiny test model (plumbing, not quality)."""

from __future__ import annotations

from lift_test_helpers import HashEmbedder, make_tokenizer

from lift_memory import LiftMemory
from lift_memory.eval.probe import compare_routes
from lift_memory.eval.questions import DOCUMENTS, bare_span, score
from lift_memory.segment import tokenize
from lift_memory.tasks.extractive import ExtractiveGenerator


def test_documents_hold_their_facts_at_the_requested_length():
    tok = make_tokenizer()
    for doc in DOCUMENTS:
        text = doc.build(tok, 1500)
        assert all(f.sentence in text for f in doc.facts)
        facts = sum(len(tokenize(f.sentence, tok)) + 2 for f in doc.facts)
        assert 1500 <= len(tokenize(text, tok)) <= 1500 + facts  # haystack of 1500 tokens, plus the facts
        positions = [text.index(f.sentence) for f in doc.facts]
        assert positions == sorted(positions) and positions[0] > 0.1 * len(text) and positions[-1] < 0.9 * len(text)


def test_questions_are_held_out_from_the_offline_training_tasks():
    import asyncio

    tok = make_tokenizer()
    for doc in DOCUMENTS:
        text = doc.build(tok, 1500)
        prompts = {t.prompt for t in asyncio.run(ExtractiveGenerator().agenerate(text, (0, len(text)), 0))}
        assert not prompts & {f.question for f in doc.facts}


def test_scoring_and_the_bare_span_check():
    fact = DOCUMENTS[0].facts[0]
    assert score("It was painted Crimson.", fact) == 1.0 and score("Blue.", fact) == 0.0
    assert bare_span('"crimson"') and bare_span("Crimson red") and not bare_span("The lighthouse was crimson.")


def test_compare_routes_answers_by_every_route(tmp_path, tiny_model_dir, fast_config):
    small = fast_config.model_copy(update={"model": fast_config.model.model_copy(update={"context_window": 128})})
    memory = LiftMemory(small, root=tmp_path, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    doc = DOCUMENTS[0]
    report = compare_routes(memory, doc.build(memory.engine.tokenizer, 400), doc.facts[1].question)
    answers = report["answers"]
    assert list(answers) == ["icl", "lift", "rag", "hybrid", "auto"] and report["document_tokens"] > 128
    assert answers["auto"]["route"] == "hybrid" and report["train_steps"] > 0
    assert 0 < answers["icl"]["coverage"] < 1 and 0 < answers["lift"]["coverage"] < 1


def test_preservation_measures_see_an_adapter_that_changes_nothing_and_one_that_does(
    tmp_path, tiny_model_dir, fast_config
):
    from lift_memory.eval.questions import IN_CONTEXT, accuracy, in_context, kl_unrelated

    results = {}
    for name, rate in (("still", 1e-12), ("moved", 5e-2)):
        train = fast_config.train.model_copy(update={"learning_rate": rate, "max_steps": 4, "warmup_steps": 0})
        config = fast_config.model_copy(update={"train": train})
        memory = LiftMemory(
            config, root=tmp_path / name, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False
        )
        doc = DOCUMENTS[1]
        memory.memorize(doc.build(memory.engine.tokenizer, 300), doc_id="doc", train=True)
        results[name] = (kl_unrelated(memory, "doc"), in_context(memory, "doc"))
        assert 0.0 <= accuracy(memory, doc, "doc", "rag") <= 1.0
        memory.close()
    (kl_still, kept_still), (kl_moved, _) = results["still"], results["moved"]
    assert kl_still < 1e-6 < kl_moved
    assert kept_still["kept"] == 1.0 and kept_still["base"] == kept_still["adapted"]
    assert len(IN_CONTEXT) >= 3
