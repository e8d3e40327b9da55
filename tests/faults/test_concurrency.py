"""Two processes writing the same document at once: they serialize on the document's lock, or one fails with a
typed error before changing anything; what is stored afterwards is whole and says what is really there."""

from __future__ import annotations

import hashlib

import pytest
from fault_helpers import ALPHA, BETA, GAMMA, Worker, open_memory, witness

from lift_memory.config import RetrievalConfig

pytestmark = pytest.mark.slow


def _texts(tmp_path):
    files = []
    for name, text in [("beta", BETA), ("gamma", GAMMA)]:
        (tmp_path / f"{name}.txt").write_text(text)
        files.append(tmp_path / f"{name}.txt")
    return files


def _race(root, model_dir, go, jobs, *extra):
    """Start one worker per job, let them load, then release them together; return their last lines."""
    workers = [Worker(root, model_dir, *job, "--wait-file", str(go), *extra) for job in jobs]
    for worker in workers:
        worker.wait_for("READY")
    go.touch()
    return [worker.result() for worker in workers]


def assert_consistent(memory) -> None:
    """Every stored memory is whole: its text is the one its manifest names, its folder holds nothing else, no
    journal is left, and `indexed` is true exactly when the index holds the chunks of that text."""
    assert not list(memory.root.rglob(".journal.json"))
    for record in memory.list():
        text = memory.bank.text(record.doc_id)
        assert hashlib.sha256(text.encode()).hexdigest() == record.doc_hash
        manifest = memory.bank.manifest(record.doc_id)
        named = {"manifest.json", manifest.document_file, manifest.adapter_file} - {None}
        assert {p.name for p in (memory.root / "docs" / record.doc_id).iterdir()} == named
        store = memory.retriever.store
        if record.indexed:
            assert store.doc_hash(record.namespace, record.doc_id) == record.doc_hash
            assert "".join(c.text for c in store.chunks(record.namespace, record.doc_id))
        for namespace in store.namespaces():
            if not record.indexed or namespace != record.namespace:
                assert store.chunks(namespace, record.doc_id) == []


@pytest.mark.parametrize("where", ["no index", "chroma server"])
def test_two_processes_replacing_one_document_serialize(where, request, tmp_path, tiny_model_dir, fast_config):
    extra, config = ["--no-index"], fast_config.model_copy(update={"retrieval": RetrievalConfig(enabled=False)})
    if where == "chroma server":
        port = request.getfixturevalue("chroma_server")
        extra = ["--port", str(port)]
        config = fast_config.model_copy(update={"retrieval": RetrievalConfig(host="127.0.0.1", port=port)})
    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, config) as memory:
        memory.memorize(ALPHA, doc_id="kept")
        memory.memorize(ALPHA, doc_id="shared")
        kept = witness(memory)["memories"]["kept"]
    beta, gamma = _texts(tmp_path)
    jobs = [["memorize", "shared", str(beta), "--replace", "--steps", "20"]]
    jobs.append(["memorize", "shared", str(gamma), "--replace", "--steps", "20"])
    results = _race(root, tiny_model_dir, tmp_path / "go", jobs, *extra)
    assert all(r.startswith("OK") for r in results), results  # serialized: both writes happened, one after the other
    with open_memory(root, tiny_model_dir, config) as memory:
        assert_consistent(memory)
        final = memory.get("shared")
        assert final.doc_hash in {hashlib.sha256(t.encode()).hexdigest() for t in (BETA, GAMMA)}
        assert witness(memory)["memories"]["kept"] == kept
        if where == "chroma server":
            hits = memory.retrieve("Marie Curie Nobel violin strings orchard", ["shared"], k=10)
            assert hits and {memory.bank.text("shared")[h.char_start : h.char_end] == h.text for h in hits} == {True}


def test_memorize_and_forget_racing(chroma_server, tmp_path, tiny_model_dir, fast_config):
    config = fast_config.model_copy(update={"retrieval": RetrievalConfig(host="127.0.0.1", port=chroma_server)})
    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, config) as memory:
        memory.memorize(ALPHA, doc_id="shared")
    beta, _ = _texts(tmp_path)
    jobs = [["memorize", "shared", str(beta), "--replace", "--steps", "20"], ["forget", "shared"]]
    results = _race(root, tiny_model_dir, tmp_path / "go", jobs, "--port", str(chroma_server))
    assert results[0].startswith("OK")  # the forget ran first, or second: both are fine
    assert results[1].startswith("OK") or "UnknownDocumentError" in results[1], results
    with open_memory(root, tiny_model_dir, config) as memory:
        assert_consistent(memory)
        assert [r.doc_id for r in memory.list()] in ([], ["shared"])


def test_a_writer_that_waits_too_long_gives_up_cleanly(tmp_path, tiny_model_dir, fast_config):
    config = fast_config.model_copy(update={"retrieval": RetrievalConfig(enabled=False)})
    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, config) as memory:
        memory.memorize(ALPHA, doc_id="shared")
        before = witness(memory)
    beta, gamma = _texts(tmp_path)
    holder = Worker(
        root, tiny_model_dir, "memorize", "shared", str(beta), "--replace", "--steps", "100000", "--no-index"
    )
    holder.wait_for("TRAINING")  # inside its transaction, holding the lock
    impatient = Worker(
        root, tiny_model_dir, "memorize", "shared", str(gamma), "--replace", "--lock-timeout", "0.5", "--no-index"
    )
    result = impatient.result()
    holder.kill()
    assert result.startswith("ERR DocumentBusyError") and "waited 0.5 s" in result and "\n" not in result
    with open_memory(root, tiny_model_dir, config) as memory:
        assert witness(memory) == before


def test_a_second_process_on_an_embedded_store_is_refused_before_any_change(tmp_path, tiny_model_dir, fast_config):
    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, fast_config) as memory:
        memory.memorize(ALPHA, doc_id="alpha")
        before = witness(memory)
        memory.retrieve("Ada Lovelace")  # this process holds the embedded index open
        beta, _ = _texts(tmp_path)
        result = Worker(root, tiny_model_dir, "memorize", "alpha", str(beta), "--replace").result()
        assert result.startswith("ERR StoreLockedError") and "chroma run" in result
        assert witness(memory) == before
