"""Damaged files: one damaged record stays one damaged record, derived data is rebuilt from the documents, and
nothing read from disk is trusted (paths, links, adapters, BM25 arrays, pickles)."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from fault_helpers import ALPHA, BETA, GAMMA, one_line, open_memory, witness

from lift_memory.errors import (
    AdapterMismatchError,
    DamagedMemoryError,
    DocumentExistsError,
    ModelLoadError,
    StoreCorruptedError,
)


@pytest.fixture
def stocked(tmp_path, tiny_model_dir, fast_config):
    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, fast_config) as memory:
        memory.memorize(ALPHA, doc_id="alpha")
        memory.memorize(BETA, doc_id="beta")
        memory.memorize(GAMMA, doc_id="gamma", namespace="other")
        before = witness(memory)
    return root, before, lambda: open_memory(root, tiny_model_dir, fast_config)


def _manifest(root, doc_id):
    return root / "docs" / doc_id / "manifest.json"


def _edit(root, doc_id, **fields):
    path = _manifest(root, doc_id)
    manifest = json.loads(path.read_text())
    manifest.update(fields)
    for key in [k for k, v in fields.items() if v is ...]:
        del manifest[key]
    path.write_text(json.dumps(manifest))


DAMAGES = {
    "not JSON": lambda root: _manifest(root, "beta").write_text("{damaged"),
    "not UTF-8": lambda root: _manifest(root, "beta").write_bytes(b"\xff\xfe\x00garbage"),
    "a JSON list": lambda root: _manifest(root, "beta").write_text("[1, 2]"),
    "a field missing": lambda root: _edit(root, "beta", base=...),
    "a field of the wrong type": lambda root: _edit(root, "beta", n_tokens="many", train={"steps": "x"}),
    "a path outside the root": lambda root: _edit(root, "beta", document_file="../../../../etc/passwd"),
    "an absolute path": lambda root: _edit(root, "beta", document_file="/etc/passwd"),
    "an empty file": lambda root: _manifest(root, "beta").write_bytes(b""),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_record_stays_one_damaged_record(damage, stocked):
    root, before, reopen = stocked
    DAMAGES[damage](root)
    with reopen() as memory:
        assert [r.doc_id for r in memory.list()] == ["alpha", "gamma"]  # the others are listed and intact
        assert set(memory.damaged()) == {"beta"}
        for call in (lambda: memory.get("beta"), lambda: memory.ask("What?", "beta", mode="icl")):
            with pytest.raises(DamagedMemoryError) as caught:
                call()
            assert "forget it, or memorize it again with replace=True" in one_line(caught.value)
        with pytest.raises(DocumentExistsError) as caught:
            memory.memorize(BETA, doc_id="beta")
        one_line(caught.value)
        assert memory.ask("Who won two Nobel prizes?", mode="rag").snippets == ()  # its chunks are never shown
        memory.memorize(BETA, doc_id="beta", replace=True)  # the way out
        after = witness(memory)
        assert {k: v for k, v in after["memories"].items() if k != "beta"} == {
            k: v for k, v in before["memories"].items() if k != "beta"
        }
        assert after["memories"]["beta"]["text"] == BETA and after["memories"]["beta"]["hits"]
        DAMAGES[damage](root)
        memory.forget("beta")  # the other way out
        assert memory.damaged() == {} and "beta" not in {h.doc_id for h in memory.retrieve("Marie Curie Nobel")}


def test_a_folder_without_a_manifest_is_ignored_and_can_be_forgotten(stocked):
    root, _, reopen = stocked
    _manifest(root, "beta").unlink()
    with reopen() as memory:
        assert [r.doc_id for r in memory.list()] == ["alpha", "gamma"]
        memory.forget("beta")
        assert not (root / "docs" / "beta").exists()


@pytest.mark.parametrize("damage", ["truncated", "foreign tensors", "a pickle", "deleted", "a link outside"])
def test_a_damaged_adapter_or_document_file_is_a_typed_line(damage, stocked, tmp_path):
    root, before, reopen = stocked
    folder = root / "docs" / "alpha"
    adapter = next(folder.glob("adapter-*.safetensors"))
    document = next(folder.glob("document-*.txt"))
    marker = tmp_path / "unpickled"
    if damage == "truncated":
        adapter.write_bytes(adapter.read_bytes()[:100])
    elif damage == "foreign tensors":
        from safetensors.torch import save_file

        save_file({"some.other.weight": torch.zeros(3, 3)}, adapter)
    elif damage == "a pickle":

        class Exploit:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        adapter.write_bytes(pickle.dumps({"w": Exploit()}))
    elif damage == "deleted":
        document.unlink()
    else:
        secret = tmp_path / "secret.txt"
        secret.write_text("not part of any memory")
        document.unlink()
        document.symlink_to(secret)
    with reopen() as memory:
        expected = AdapterMismatchError if damage == "foreign tensors" else DamagedMemoryError
        mode = "icl" if damage in ("deleted", "a link outside") else "lift"
        with pytest.raises(expected) as caught:
            memory.ask("What saves nine?", "alpha", mode=mode)
        one_line(caught.value)
        assert not marker.exists()  # nothing was unpickled
        others = witness(memory, skip=("alpha",))["memories"]
        assert others == {k: v for k, v in before["memories"].items() if k != "alpha"}


INDEX_DAMAGES = {
    "chunk log garbage": lambda index: (index / "namespaces" / "default" / "chunks" / "alpha.json").write_text("{x"),
    "chunk log deleted": lambda index: (index / "namespaces" / "default" / "chunks" / "alpha.json").unlink(),
    "namespace folder deleted": lambda index: shutil.rmtree(index / "namespaces" / "default"),
    "database garbage": lambda index: [
        f.write_bytes(b"not a database" * 64) for f in (index / "chroma").rglob("*") if f.is_file()
    ],
    "database deleted": lambda index: shutil.rmtree(index / "chroma"),
    "whole index deleted": lambda index: shutil.rmtree(index),
}


@pytest.mark.parametrize("damage", INDEX_DAMAGES)
def test_damaged_derived_data_names_rebuild_and_rebuild_restores_everything(damage, stocked):
    root, before, reopen = stocked
    with reopen() as memory:
        memory.retrieve("Ada Lovelace")  # the BM25 index is saved too
        counts = {ns: len(memory.retriever.store.chunks(ns)) for ns in ("default", "other")}
    INDEX_DAMAGES[damage](root / "index")
    with reopen() as memory:
        with pytest.raises(StoreCorruptedError) as caught:
            memory.retrieve("Ada Lovelace and Alan Turing")
        assert "lift-memory rebuild" in one_line(caught.value)
        assert memory.rebuild_index() == counts
    with reopen() as memory:
        assert witness(memory)["memories"] == before["memories"]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "a pickled array", "foreign ids"])
def test_a_damaged_bm25_index_is_rebuilt_from_the_chunks(damage, stocked, tmp_path):
    root, before, reopen = stocked
    with reopen() as memory:
        memory.retrieve("Ada Lovelace")
    folder = root / "index" / "namespaces" / "default" / "bm25"
    marker = tmp_path / "unpickled"
    files = [f for f in folder.iterdir() if f.is_file()]
    assert files
    for f in files:
        if damage == "garbage":
            f.write_bytes(b"\x93NUMPY garbage" * 10)
        elif damage == "truncated":
            f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
        elif damage == "a pickled array" and f.suffix == ".npy":

            class Exploit:
                def __reduce__(self):
                    return (open, (str(marker), "w"))

            import numpy as np

            np.save(f, np.array([Exploit()], dtype=object), allow_pickle=True)
        elif damage == "foreign ids" and f.name == "ids.json":
            meta = json.loads(f.read_text())
            f.write_text(json.dumps({**meta, "ids": ["x"] * len(meta["ids"])}))
    with reopen() as memory:
        assert witness(memory)["memories"] == before["memories"]  # rebuilt quietly: it is derived from the chunks
    assert not marker.exists()


@pytest.mark.parametrize("namespace", ["chroma", "namespaces", "locks", "docs", "index", "bm25", "chunks"])
def test_user_namespaces_never_collide_with_internal_folders(namespace, stocked):
    _, before, reopen = stocked
    with reopen() as memory:
        memory.memorize(ALPHA, doc_id="again", namespace=namespace, train=False)
        assert {h.doc_id for h in memory.retrieve("Ada Lovelace", namespace=namespace)} == {"again"}
        assert {k: v for k, v in witness(memory)["memories"].items() if k != "again"} == before["memories"]
        assert memory.rebuild_index()[namespace] > 0


def test_an_embedder_folder_with_pickled_weights_is_refused(tmp_path):
    from lift_memory.retrieval.embeddings import SentenceTransformerEmbedder

    folder = tmp_path / "embedder"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only") as caught:
        SentenceTransformerEmbedder(str(folder))
    one_line(caught.value)
