from __future__ import annotations

import random

import pytest
from lift_test_helpers import TEXT, HashEmbedder, make_tokenizer

from lift_memory.errors import ConfigError
from lift_memory.retrieval.chunking import chunk_document
from lift_memory.retrieval.fusion import reciprocal_rank_fusion
from lift_memory.retrieval.hybrid import HybridRetriever, exact_phrases
from lift_memory.retrieval.store import ChromaStore


def test_rrf_matches_the_formula():
    fused = dict(reciprocal_rank_fusion({"a": ["x", "y"], "b": ["y", "z"]}, k=60, weights={"b": 2.0}))
    assert fused["x"] == pytest.approx(1 / 61)
    assert fused["y"] == pytest.approx(1 / 62 + 2 / 61)
    assert fused["z"] == pytest.approx(2 / 62)
    assert list(dict(reciprocal_rank_fusion({"a": ["x", "y"], "b": ["y", "z"]}))) == ["y", "x", "z"]


def test_exact_phrases():
    query = 'Where is "the blue door" for user_42, order AB-1234 and id 90210 in 2024.5 (camelCase, ABC)?'
    phrases = exact_phrases(query)
    assert set(phrases) == {"the blue door", "2024.5", "user_42", "AB-1234", "camelCase", "90210", "ABC"}
    assert [len(p) for p in phrases] == sorted(map(len, phrases), reverse=True)  # longest first; "1234" is in AB-1234
    assert exact_phrases("what is the best thing to do?") == []
    assert exact_phrases("what's the code for Bob's door?") == []  # apostrophes are no quotes
    assert exact_phrases("the 'red key' of v1.2") == ["red key", "v1.2"]


def _haystack(n_needles: int, seed: int = 0):
    from lift_memory.builtin import held_out_text

    rng = random.Random(seed)
    text = "\n\n".join(held_out_text())[:30000]
    needles = []
    for i in range(n_needles):
        key = str(rng.randrange(10**6, 10**7))
        needles.append((f"ward{i}", key))
        at = text.find(". ", (i + 1) * len(text) // (n_needles + 1)) + 2
        text = text[:at] + f"The pass key for ward{i} is {key}. " + text[at:]
    return text, needles


def test_filters_methods_and_bad_arguments():
    store = ChromaStore(embedder=HashEmbedder())
    store.add("ns", "d1", chunk_document(TEXT, "d1", make_tokenizer(), size=40))
    store.add("ns", "d2", chunk_document(TEXT.upper(), "d2", make_tokenizer(), size=40))
    retriever = HybridRetriever(store)
    hits = retriever.retrieve("quick brown fox", "ns", k=4, doc_ids=["d2"])
    assert hits and {h.doc_id for h in hits} == {"d2"}
    only_bm25 = retriever.retrieve("Lovelace", "ns", k=3, methods=["bm25"])
    assert only_bm25 and all(set(h.scores) == {"bm25", "rrf"} for h in only_bm25)
    assert retriever.retrieve("anything", "ns", doc_ids=[]) == []
    phrase_only = retriever.retrieve('"Ada Lovelace"', "ns", k=3, doc_ids=["d1"], methods=["phrase"])
    assert phrase_only and all("Ada Lovelace" in h.text and h.doc_id == "d1" for h in phrase_only)
    with pytest.raises(ConfigError, match="unknown retrieval methods"):
        retriever.retrieve("x", "ns", methods=["telepathy"])


def test_hits_carry_provenance():
    text, needles = _haystack(3)
    store = ChromaStore(embedder=HashEmbedder())
    store.add("ns", "hay", chunk_document(text, "hay", make_tokenizer(), size=64, overlap=8))
    for ward, key in needles:
        hit = HybridRetriever(store).retrieve(f"pass key {ward}", "ns", k=1)[0]
        assert text[hit.char_start : hit.char_end] == hit.text and key in hit.text
        assert hit.doc_id == "hay" and hit.chunk_id.startswith("hay:") and "rrf" in hit.scores


def test_bm25_index_is_persisted_and_follows_changes(tmp_path):
    store = ChromaStore(tmp_path, embedder=HashEmbedder())
    store.add("ns", "d1", chunk_document(TEXT, "d1", make_tokenizer(), size=40))
    retriever = HybridRetriever(store)
    first = retriever.bm25("ns")
    assert (tmp_path / "namespaces" / "ns" / "bm25" / "ids.json").is_file()
    assert retriever.bm25("ns") is first  # unchanged chunks: the cached index
    store.add("ns", "d2", chunk_document("Zanzibar zebras zigzag.", "d2", make_tokenizer(), size=40))
    assert retriever.retrieve("zebras", "ns", k=1, methods=["bm25"])[0].doc_id == "d2"
    store.close()
    reopened = HybridRetriever(ChromaStore(tmp_path, embedder=HashEmbedder()))
    assert reopened.retrieve("zebras", "ns", k=1, methods=["bm25"])[0].doc_id == "d2"


@pytest.mark.slow
def test_hybrid_finds_passkey_needles_that_dense_retrieval_misses():
    """With the real default embedder: asking for the ward that holds a passkey value."""
    text, needles = _haystack(12, seed=1)
    store = ChromaStore()  # the bundled all-MiniLM-L6-v2
    store.add("ns", "hay", chunk_document(text, "hay", make_tokenizer(), size=64, overlap=8))
    retriever = HybridRetriever(store)

    def hit_rate(methods):
        found = 0
        for ward, key in needles:
            hits = retriever.retrieve(f"Which ward has pass key {key}?", "ns", k=5, methods=methods)
            found += any(f"{ward} is {key}" in h.text for h in hits)
        return found / len(needles)

    assert hit_rate(["dense", "bm25", "phrase"]) == 1.0
    assert hit_rate(["dense"]) < 1.0
