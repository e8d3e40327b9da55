from __future__ import annotations

import gc
import weakref

import pytest
from lift_test_helpers import TEXT, HashEmbedder

from lift_memory import LiftMemory, MemoryConfig
from lift_memory.config import RetrievalConfig
from lift_memory.errors import StoreUnavailableError


@pytest.fixture
def memory(tmp_path, tiny_model_dir, fast_config):
    return LiftMemory(
        fast_config, root=tmp_path / "mem", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False
    )


def test_memorize_indexes_and_forget_removes(memory):
    record = memory.memorize(TEXT, doc_id="proverbs")
    assert record.indexed and record.trained
    hits = memory.retrieve("Ada Lovelace", k=2)
    assert hits and hits[0].doc_id == "proverbs" and "Ada Lovelace" in hits[0].text
    text = memory.bank.text("proverbs")
    assert all(text[h.char_start : h.char_end] == h.text for h in hits)
    memory.forget("proverbs")
    assert memory.retrieve("Ada Lovelace") == []


def test_a_document_that_fits_the_window_is_read_not_trained(memory):
    record = memory.memorize("A short note. The code is 4512.", doc_id="note")
    assert not record.trained and record.adapter is None and "fits the context window" in record.reason
    assert record.indexed
    forced = memory.memorize("Another short note.", doc_id="note2", train=True)
    assert forced.trained


def test_index_and_train_can_be_turned_off(memory):
    record = memory.memorize(TEXT, doc_id="p", index=False)
    assert record.trained and not record.indexed and memory.retrieve("Ada") == []
    again = memory.memorize(TEXT, doc_id="p")  # same text and settings: only the missing index is added
    assert again.indexed and again.train == record.train and memory.retrieve("Ada Lovelace")


def test_replacing_a_document_replaces_its_chunks(memory):
    memory.memorize(TEXT, doc_id="d")
    memory.memorize("Completely different words about zebras. " * 20, doc_id="d", replace=True)
    assert all("Lovelace" not in h.text for h in memory.retrieve("Ada Lovelace", k=10))
    assert memory.retrieve("zebras")[0].doc_id == "d"


def test_namespaces_keep_documents_apart(memory):
    memory.memorize(TEXT, doc_id="a", namespace="team-a")
    memory.memorize(TEXT.upper(), doc_id="b", namespace="team-b")
    assert {h.doc_id for h in memory.retrieve("Lovelace", namespace="team-a", k=10)} == {"a"}
    assert {h.doc_id for h in memory.retrieve("LOVELACE", namespace="team-b", k=10)} == {"b"}


def test_the_same_text_memorized_into_another_namespace_moves_its_chunks(memory):
    first = memory.memorize(TEXT, doc_id="d", namespace="team-a")
    moved = memory.memorize(TEXT, doc_id="d", namespace="team-b")  # same text and settings: no retraining
    store = memory.retriever.store
    assert moved.namespace == "team-b" and moved.train == first.train
    assert store.chunks("team-a", "d") == [] and store.count("team-a") == 0  # no orphans left behind
    assert memory.retrieve("Lovelace", namespace="team-a") == []
    assert memory.retrieve("Lovelace", namespace="team-b")[0].doc_id == "d"


def test_rebuild_index_uses_the_configured_server(chroma_server, tmp_path, tiny_model_dir, fast_config):
    config = fast_config.model_copy(update={"retrieval": RetrievalConfig(host="127.0.0.1", port=chroma_server)})
    memory = LiftMemory(config, root=tmp_path / "m", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    memory.memorize(TEXT, doc_id="d", train=False)
    n = memory.retriever.store.count("default")
    assert n > 0 and not (tmp_path / "m" / "index" / "chroma").exists()  # the server holds the vectors
    assert memory.rebuild_index() == {"default": n}
    assert not (tmp_path / "m" / "index" / "chroma").exists()  # rebuilt on the server, not in a local database
    assert memory.retrieve("Ada Lovelace")[0].doc_id == "d"


def test_a_store_that_is_down_loses_nothing(tmp_path, tiny_model_dir, fast_config):
    config = fast_config.model_copy(update={"retrieval": RetrievalConfig(host="127.0.0.1", port=9)})
    memory = LiftMemory(config, root=tmp_path / "m", model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    before = memory.memorize(TEXT, doc_id="kept", index=False)  # needs no store
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        memory.memorize(TEXT + " A second edition.", doc_id="kept", replace=True)
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        memory.memorize(TEXT, doc_id="new")
    # The store is opened before anything changes: the earlier memory is intact, nothing new was stored.
    assert memory.get("kept") == before and memory.bank.text("kept") == TEXT
    assert [r.doc_id for r in memory.list()] == ["kept"]
    assert isinstance(MemoryConfig().retrieval, RetrievalConfig)


def test_a_memory_dropped_without_close_is_freed_at_once(tmp_path, tiny_model_dir, fast_config):
    """No reference cycles: the last reference going frees the memory and its index (the CLI and scripts rely on
    it, so that another process may open the embedded index right after)."""
    memory = LiftMemory(fast_config, root=tmp_path, model=str(tiny_model_dir), embedder=HashEmbedder(), progress=False)
    memory.memorize(TEXT, doc_id="d")
    assert memory.ask("Ada Lovelace", "d", max_new_tokens=2).snippets
    store, freed = weakref.ref(memory.retriever.store), weakref.ref(memory)
    gc.disable()  # only reference counting may free it
    try:
        del memory
        assert freed() is None and store() is None
    finally:
        gc.enable()


def test_rebuild_index(memory):
    memory.memorize(TEXT, doc_id="d")
    n = memory.retriever.store.count("default")
    assert memory.rebuild_index() == {"default": n}
    assert memory.retrieve("Ada Lovelace")[0].doc_id == "d"


def test_hybrid_answers_stream_the_same_text_and_cite_their_snippets(memory):
    memory.memorize(TEXT, doc_id="p")
    answer = memory.ask("Ada Lovelace", "p", mode="hybrid", max_new_tokens=6)
    assert answer.route == "hybrid" and answer.adapter == "p" and answer.snippets
    text = memory.bank.text("p")
    assert all(text[s.char_start : s.char_end] == s.text for s in answer.snippets)
    assert answer.timings["retrieve"] > 0 and answer.prompt_tokens + 6 <= memory.engine.base.context_window
    assert "".join(memory.stream("Ada Lovelace", "p", mode="hybrid", max_new_tokens=6)) == answer.text
    rag = memory.ask("Ada Lovelace", "p", mode="rag", max_new_tokens=6)
    assert rag.route == "rag" and rag.adapter is None
