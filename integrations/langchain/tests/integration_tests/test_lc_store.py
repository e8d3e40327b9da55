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
