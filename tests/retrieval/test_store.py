from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lift_test_helpers import TEXT, HashEmbedder, free_port, make_tokenizer

from lift_memory.errors import InvalidIdError, StoreCorruptedError, StoreLockedError, StoreUnavailableError
from lift_memory.retrieval.chunking import chunk_document
from lift_memory.retrieval.factory import rebuild_store
from lift_memory.retrieval.store import ChromaStore


def _chunks(doc_id="d1", text=TEXT):
    return chunk_document(text, doc_id, make_tokenizer(), size=40, overlap=8)


def test_add_is_idempotent_and_delete_is_per_document():
    store = ChromaStore(embedder=HashEmbedder())
    assert store.add("ns", "d1", _chunks("d1")) == store.count("ns")
    n = store.count("ns")
    store.add("ns", "d1", _chunks("d1"))
    assert store.count("ns") == n
    store.add("ns", "d2", _chunks("d2", TEXT.upper()))
    assert store.doc_ids("ns") == ["d1", "d2"] and store.count("ns") > n
    store.delete("ns", "d1")
    assert store.doc_ids("ns") == ["d2"] and store.count("ns") == len(_chunks("d2", TEXT.upper()))
    assert {h["doc_id"] for h in store.dense("ns", "quick brown fox", 5)} == {"d2"}


def test_replacing_a_document_drops_its_old_chunks():
    store = ChromaStore(embedder=HashEmbedder())
    store.add("ns", "d1", _chunks("d1", TEXT))
    store.add("ns", "d1", _chunks("d1", "Only one sentence now."))
    assert store.count("ns") == 1 and store.chunks("ns", "d1")[0].text == "Only one sentence now."


def test_namespaces_are_separate_collections():
    store = ChromaStore(embedder=HashEmbedder())
    store.add("alpha", "d1", _chunks())
    assert store.count("beta") == 0 and store.namespaces() == ["alpha"]
    with pytest.raises(InvalidIdError):
        store.add("../escape", "d1", _chunks())


def test_containing_finds_verbatim_phrases_only():
    store = ChromaStore(embedder=HashEmbedder())
    store.add("ns", "d1", _chunks())
    hits = store.containing("ns", ["Ada Lovelace"], 10)
    assert hits and all("Ada Lovelace" in h["text"] for h in hits)
    assert store.containing("ns", ["Charles Babbage"], 10) == []
    both = store.containing("ns", ["Charles Babbage", "Alan Turing"], 10)
    assert both and all("Alan Turing" in h["text"] for h in both)


def test_persistent_store_reopens_in_a_new_process(tmp_path):
    store = ChromaStore(tmp_path, embedder=HashEmbedder())
    store.add("ns", "d1", _chunks())
    expected = store.count("ns")
    store.close()
    del store
    code = (
        "import sys; sys.path.insert(0, 'tests'); from lift_test_helpers import HashEmbedder; "
        "from lift_memory.retrieval.store import ChromaStore; "
        f"s = ChromaStore({str(tmp_path)!r}, embedder=HashEmbedder()); "
        "print(s.count('ns'), len(s.chunks('ns')), s.dense('ns', 'stitch in time', 1)[0]['text'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    count, logged, text = out.stdout.split(" ", 2)
    assert int(count) == expected == int(logged) and "stitch" in text


def test_a_store_held_by_another_process_is_refused(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; "
            f"l = FileLock({str(tmp_path.resolve()) + '.lock'!r}); l.acquire(); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError, match="in use by another process"):
            ChromaStore(tmp_path, embedder=HashEmbedder())
    finally:
        holder.kill()


def test_a_damaged_database_is_reported_and_rebuilt_from_the_documents(tmp_path):
    store = ChromaStore(tmp_path, embedder=HashEmbedder())
    store.add("ns", "d1", _chunks())
    expected = store.count("ns")
    store.close()
    del store
    for file in (tmp_path / "chroma").rglob("*.sqlite3"):
        file.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorruptedError, match="lift-memory rebuild"):
        ChromaStore(tmp_path, embedder=HashEmbedder())
    assert rebuild_store(tmp_path, [("ns", "d1", "h1", _chunks())], embedder=HashEmbedder()) == {"ns": expected}
    reopened = ChromaStore(tmp_path, embedder=HashEmbedder())
    assert reopened.count("ns") == expected and reopened.containing("ns", ["Ada Lovelace"], 5)
    assert reopened.doc_hash("ns", "d1") == "h1" and list(tmp_path.glob("chroma.damaged-*"))


def test_server_mode_against_a_real_chroma_server(chroma_server, tmp_path):
    store = ChromaStore(tmp_path, host="127.0.0.1", port=chroma_server, embedder=HashEmbedder())
    assert store.mode == "server"
    store.add("ns", "d1", _chunks())
    n = store.count("ns")
    store.add("ns", "d1", _chunks())
    assert store.count("ns") == n > 0
    assert store.containing("ns", ["Alan Turing"], 3)
    assert store.dense("ns", "glitters gold", 1)[0]["doc_id"] == "d1"
    store.delete("ns", "d1")
    assert store.count("ns") == 0


def test_an_unreachable_server_is_a_typed_error_after_bounded_retries(tmp_path):
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="unreachable after 3 attempts"):
        ChromaStore(tmp_path, host="127.0.0.1", port=free_port(), embedder=HashEmbedder())
    assert time.monotonic() - started < 15


def test_chroma_telemetry_is_off_and_the_environment_left_alone(monkeypatch, tmp_path):
    monkeypatch.delenv("ANONYMIZED_TELEMETRY", raising=False)
    for store in (ChromaStore(embedder=HashEmbedder()), ChromaStore(tmp_path, embedder=HashEmbedder())):
        assert store._client.get_settings().anonymized_telemetry is False
        store.close()
    assert "ANONYMIZED_TELEMETRY" not in os.environ  # no process-wide side effect
