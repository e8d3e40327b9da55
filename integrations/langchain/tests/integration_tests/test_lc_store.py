"""LiftStore against the LangGraph BaseStore contract, on a real lift-memory (builtin:tiny)."""

from __future__ import annotations

import pytest
from langchain_lift import LiftStore
from langchain_lift.stores import adapter_doc_id, lift_namespace
from langgraph.store.base import GetOp, PutOp

from lift_memory import LiftMemory, MemoryConfig
from lift_memory.config import TrainConfig


@pytest.fixture
def store(tmp_path):
    memory = LiftMemory(MemoryConfig(train=TrainConfig(max_steps=10)), root=tmp_path, progress=False)
    return LiftStore(memory)


def test_put_get_update_delete(store):
    store.put(("users", "ada"), "a1", {"text": "Ada prefers tea.", "kind": "preference"})
    item = store.get(("users", "ada"), "a1")
    assert item.value == {"text": "Ada prefers tea.", "kind": "preference"} and item.namespace == ("users", "ada")
    created = item.created_at
    store.put(("users", "ada"), "a1", {"text": "Ada prefers green tea.", "kind": "preference"})
    updated = store.get(("users", "ada"), "a1")
    assert updated.value["text"] == "Ada prefers green tea." and updated.created_at == created
    assert updated.updated_at >= created
    store.delete(("users", "ada"), "a1")
    assert store.get(("users", "ada"), "a1") is None
    assert store.search(("users",), query="green tea") == []  # its chunks went with it


def test_search_is_hybrid_retrieval_with_scores_and_filters(store):
    store.put(("users", "ada"), "a1", {"text": "Ada prefers tea, never coffee.", "kind": "preference", "n": 1})
    store.put(("users", "ada"), "a2", {"text": "Ada's locker code is 5521.", "kind": "fact", "n": 2})
    store.put(("users", "bob"), "b1", {"text": "Bob rides a red bicycle to work.", "kind": "fact", "n": 3})
    hits = store.search(("users",), query="locker code 5521", limit=2)
    assert hits[0].key == "a2" and hits[0].score is not None and hits[0].score >= (hits[-1].score or 0)
    assert [h.key for h in store.search(("users", "bob"), query="bicycle")] == ["b1"]
    facts = store.search(("users",), filter={"kind": "fact"})
    assert {h.key for h in facts} == {"a2", "b1"} and all(h.score is None for h in facts)
    assert {h.key for h in store.search(("users",), filter={"n": {"$gte": 2}})} == {"a2", "b1"}
    assert len(store.search(("users",), limit=1, offset=1)) == 1


def test_items_without_text_are_stored_but_not_indexed(store):
    store.put(("cfg",), "c", {"theme": "dark"})
    store.put(("cfg",), "d", {"text": "not indexed"}, index=False)
    assert store.get(("cfg",), "c").value == {"theme": "dark"}
    assert store.search(("cfg",), query="indexed") == []
    assert store.memory.retrieve("not indexed", namespace=lift_namespace(("cfg",))) == []


def test_list_namespaces(store):
    for ns in [("a", "x", "1"), ("a", "y", "1"), ("b", "x", "2")]:
        store.put(ns, "k", {"text": "hello " + "/".join(ns)})
    assert store.list_namespaces() == [("a", "x", "1"), ("a", "y", "1"), ("b", "x", "2")]
    assert store.list_namespaces(prefix=("a",)) == [("a", "x", "1"), ("a", "y", "1")]
    assert store.list_namespaces(suffix=("1",)) == [("a", "x", "1"), ("a", "y", "1")]
    assert store.list_namespaces(prefix=("*", "x")) == [("a", "x", "1"), ("b", "x", "2")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("b",)]
    assert store.list_namespaces(limit=1, offset=1) == [("a", "y", "1")]


def test_batch_results_line_up_with_ops(store):
    results = store.batch([PutOp(("n",), "k", {"text": "v"}), GetOp(("n",), "k"), GetOp(("n",), "missing")])
    assert results[0] is None and results[1].value == {"text": "v"} and results[2] is None


async def test_async_api(store):
    await store.aput(("async",), "k", {"text": "The harbour lights turn green at dusk."})
    assert (await store.aget(("async",), "k")).value["text"].startswith("The harbour")
    assert (await store.asearch(("async",), query="harbour lights"))[0].key == "k"
    assert await store.alist_namespaces() == [("async",)]


def test_memorize_every_trains_the_namespace_adapter(store):
    store.memorize_every = 2
    store.put(("team",), "1", {"text": "The deploy window is Tuesday at nine."})
    assert adapter_doc_id(("team",)) not in store.memory.bank
    store.put(("team",), "2", {"text": "Rollbacks need two approvals."})
    store.wait()  # the adapter trains in the background worker
    record = store.memory.get(adapter_doc_id(("team",)))
    assert record.trained and not record.indexed
    store.put(("team",), "3", {"text": "Hotfixes skip the window."})
    assert store.flush() == [("team",)] and store.flush() == []


def test_a_value_that_is_not_json_changes_nothing(store):
    from lift_memory.errors import InvalidDocumentError

    store.put(("users", "ada"), "a1", {"text": "Ada prefers tea."})
    records = store.memory.list()
    with pytest.raises(InvalidDocumentError, match="cannot be stored as JSON"):
        store.put(("users", "ada"), "a1", {"text": "Ada prefers coffee.", "when": object()})
    assert store.get(("users", "ada"), "a1").value == {"text": "Ada prefers tea."}
    assert store.memory.list() == records
    assert [h.key for h in store.search(("users",), query="tea")] == ["a1"]


def test_training_happens_in_the_background_never_under_the_store_lock(store, monkeypatch):
    import threading

    release, started = threading.Event(), threading.Event()
    memorize = store.memory.memorize

    def slow_training(text, **kwargs):
        if kwargs.get("train"):
            started.set()
            assert release.wait(30)
        return memorize(text, **kwargs)

    monkeypatch.setattr(store.memory, "memorize", slow_training)
    store.memorize_every = 1
    store.put(("team",), "1", {"text": "The deploy window is Tuesday at nine."})
    assert started.wait(30) and store.training() == []  # the worker took the job and is training
    store.put(("other",), "x", {"text": "Puts and gets go on meanwhile."}, index=False)
    assert store.get(("other",), "x").value["text"].startswith("Puts and gets")
    release.set()
    store.wait()
    assert store.memory.get(adapter_doc_id(("team",))).trained


def test_deleting_an_item_retrains_its_namespace_without_it(store):
    store.put(("team",), "1", {"text": "The deploy window is Tuesday at nine."})
    store.put(("team",), "2", {"text": "Rollbacks need two approvals."})
    assert store.flush() == [] and adapter_doc_id(("team",)) not in store.memory.bank  # memorize_every is off
    store.memorize_every = 10
    store.put(("team",), "3", {"text": "Hotfixes skip the window."})
    store.flush()
    before = store.memory.get(adapter_doc_id(("team",))).doc_hash
    store.delete(("team",), "2")
    store.wait()
    after = store.memory.bank.text(adapter_doc_id(("team",)))
    assert store.memory.get(adapter_doc_id(("team",))).doc_hash != before and "Rollbacks" not in after
    store.delete(("team",), "1")
    store.delete(("team",), "3")
    store.wait()
    assert adapter_doc_id(("team",)) not in store.memory.bank  # nothing left to remember


def test_a_filter_applies_before_the_limit(store):
    for i in range(12):
        store.put(("log",), f"k{i}", {"text": f"Deploy note {i}: the release train left on time.", "n": i})
    hits = store.search(("log",), query="deploy release train", filter={"n": {"$gte": 10}}, limit=2)
    assert sorted(h.key for h in hits) == ["k10", "k11"]


def test_langgraph_index_configuration(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from lift_memory import LiftMemory

    def HashEmbeddings():
        return DeterministicFakeEmbedding(size=64)

    store = LiftStore(root=str(tmp_path), index={"dims": 64, "embed": HashEmbeddings(), "fields": ["body"]})
    store.put(("docs",), "a", {"body": "Ada prefers green tea.", "title": "not indexed"})
    assert store.search(("docs",), query="green tea")[0].key == "a"
    assert [store.memory.bank.text(r.doc_id) for r in store.memory.list()] == ["Ada prefers green tea."]
    fn = LiftStore(root=str(tmp_path / "fn"), index={"embed": lambda texts: [[float(len(t)), 1.0] for t in texts]})
    fn.put(("x",), "k", {"text": "anything"})
    assert fn.search(("x",), query="anything")[0].key == "k"
    with pytest.raises(ValueError, match=r"dims'\]=3, but the embedder returns vectors of 64"):
        LiftStore(root=str(tmp_path / "d"), index={"dims": 3, "embed": HashEmbeddings()})
    with pytest.raises(ValueError, match="unknown index keys"):
        LiftStore(root=str(tmp_path / "u"), index={"embed": HashEmbeddings(), "ann": True})
    with pytest.raises(ValueError, match="give your memory its embedder"):
        LiftStore(LiftMemory(root=tmp_path / "m", progress=False), index={"embed": HashEmbeddings()})
