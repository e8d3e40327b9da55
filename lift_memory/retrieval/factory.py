"""The retrieval side of a memory: the embedder, the Chroma store and the hybrid retriever, set up on first use,
and retrieval filtered against the bank.

The bank is the source of truth. A hit counts only if the document's manifest says it is indexed in that
namespace and the chunk log holds the chunks of that very text, so chunks a killed process left behind are never
shown; :meth:`Retrieval.rebuild` re-creates the whole index from the stored documents.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lift_memory.bank import AdapterBank
from lift_memory.config import RetrievalConfig
from lift_memory.errors import DamagedMemoryError, LiftMemoryError, StoreCorruptedError
from lift_memory.files import storage_errors
from lift_memory.manifest import Manifest
from lift_memory.retrieval.chunking import Chunk
from lift_memory.retrieval.embeddings import Embedder
from lift_memory.types import Snippet


class Retrieval:
    """The index under ``root/index`` (or on the configured Chroma server) of the documents in ``bank``.

    Args:
        root: the memory root.
        config: the retrieval settings.
        bank: the stored documents.
        tokenizer: returns the tokenizer chunks are sized by (the base model's; loaded on first use).
        embedder: an object with ``embed_documents``/``embed_query``; None: ``config.embedder``.
    """

    def __init__(
        self, root: Path, config: RetrievalConfig, bank: AdapterBank, tokenizer: Callable[[], Any], embedder: Any = None
    ) -> None:
        self.root, self.config, self.bank, self._tokenizer = root, config, bank, tokenizer
        self._embedder = embedder
        self._retriever = None
        self._checked: dict[str, int] = {}  # namespace -> chunk version last found complete
        self._lock = threading.RLock()

    @property
    def opened(self) -> bool:
        return self._retriever is not None

    @property
    def retriever(self):
        """The :class:`~lift_memory.retrieval.hybrid.HybridRetriever` over the store (opened on first use)."""
        with self._lock:
            if self._retriever is None:
                from lift_memory.retrieval.hybrid import HybridRetriever
                from lift_memory.retrieval.store import ChromaStore

                r = self.config
                store = ChromaStore(self.root / "index", host=r.host, port=r.port, embedder=self.embedder())
                self._retriever = HybridRetriever(store, candidates=r.candidates, phrase_weight=r.phrase_weight)
            return self._retriever

    @property
    def store(self):
        return self.retriever.store

    def embedder(self):
        if self._embedder is None:
            from lift_memory.retrieval.embeddings import DEFAULT_MODEL, SentenceTransformerEmbedder, default_embedder

            name = self.config.embedder
            self._embedder = default_embedder() if name == DEFAULT_MODEL else SentenceTransformerEmbedder(name)
        return self._embedder

    def chunks(self, text: str, doc_id: str):
        from lift_memory.retrieval.chunking import chunk_document

        r = self.config
        return chunk_document(text, doc_id, self._tokenizer(), size=r.chunk_size, overlap=r.chunk_overlap)

    def close(self) -> None:
        """Release the store (and with it the index folder, which another process may then open)."""
        with self._lock:
            if self._retriever is not None:
                self._retriever.store.close()
                self._retriever = None
            self._checked.clear()

    def retrieve(self, query: str, namespace: str, k: int, doc_ids: Sequence[str] | None = None) -> list[Snippet]:
        """The ``k`` best hits for ``query`` in ``namespace`` that belong to what the bank stores."""
        self._check_index(namespace)
        hits = self.retriever.retrieve(query, namespace, k=2 * k, doc_ids=doc_ids)
        manifests: dict[str, Manifest | None] = {}  # each hit's document checked once, however many hits
        for doc_id in {hit.doc_id for hit in hits}:
            try:
                manifests[doc_id] = self.bank.manifest(doc_id)
            except LiftMemoryError:
                manifests[doc_id] = None
        return [hit for hit in hits if self._current(namespace, hit, manifests[hit.doc_id])][:k]

    def bound(self, namespace: str) -> _Bound:
        """This retrieval bound to ``namespace``: the router's ``Retriever``."""
        return _Bound(self, namespace)

    def _check_index(self, namespace: str) -> None:
        """Raise :class:`StoreCorruptedError` if the index lacks what the bank says is indexed in ``namespace``
        (a deleted or damaged chunk log or database): retrieval would otherwise find nothing, silently. Checked
        once per version of the namespace's chunks; documents being written by another process are skipped."""
        store = self.store
        if self._checked.get(namespace) == store.version(namespace):
            return
        missing = []
        for doc_id in self.bank.ids():
            try:
                manifest = self.bank.manifest(doc_id)
            except LiftMemoryError:
                continue
            if not (manifest.indexed and manifest.namespace == namespace) or self.bank.writing(doc_id):
                continue
            if not store.chunks(namespace, doc_id) or store.doc_hash(namespace, doc_id) not in (
                manifest.doc_hash,
                None,
            ):
                missing.append(doc_id)
        if missing or store.count(namespace) < len(store.chunks(namespace)):
            lacking = f"{len(missing)} memorized document(s) ({', '.join(missing[:5])})" if missing else "chunks"
            raise StoreCorruptedError(
                f"the index of namespace {namespace!r} lacks {lacking}; re-create it from the stored documents "
                "with `lift-memory rebuild`"
            )
        self._checked[namespace] = store.version(namespace)

    def _current(self, namespace: str, hit: Snippet, manifest: Manifest | None) -> bool:
        """Whether ``hit`` belongs to what the bank stores (``manifest``: its document's, None when it has none
        or a damaged one): the document is indexed in ``namespace`` and the chunk is one of the text the
        manifest names (not of a replaced or forgotten one)."""
        if manifest is None or not manifest.indexed or manifest.namespace != namespace:
            return False
        chunk = self.store.chunk(namespace, hit.chunk_id)
        return (
            chunk is not None
            and chunk.doc_id == hit.doc_id
            and self.store.doc_hash(namespace, hit.doc_id) in (manifest.doc_hash, None)
        )

    def rebuild(self) -> dict[str, int]:
        """Re-create the whole index (Chroma, chunk logs, BM25) from the stored documents, on the configured
        server or in the embedded database; returns chunks per namespace. Damaged memories are skipped."""
        documents = []
        for doc_id in self.bank.ids():
            try:
                manifest = self.bank.manifest(doc_id)
                if manifest.indexed:
                    chunks = self.chunks(self.bank.text(doc_id), doc_id)
                    documents.append((manifest.namespace, doc_id, manifest.doc_hash, chunks))
            except DamagedMemoryError:
                continue
        self.close()
        r = self.config
        return rebuild_store(self.root / "index", documents, embedder=self.embedder(), host=r.host, port=r.port)


class _Bound:
    def __init__(self, retrieval: Retrieval, namespace: str) -> None:
        self.retrieval, self.namespace = retrieval, namespace

    def retrieve(self, query: str, doc_ids: Sequence[str] | None, k: int) -> list[Snippet]:
        return self.retrieval.retrieve(query, self.namespace, k, doc_ids)


def rebuild_store(
    path: str | Path,
    documents: Iterable[tuple[str, str, str, Sequence[Chunk]]],
    *,
    embedder: Embedder | None = None,
    host: str | None = None,
    port: int = 8000,
) -> dict[str, int]:
    """Re-create everything under ``path`` (and the collections on a server) from the stored documents:
    ``documents`` yields (namespace, doc_id, doc_hash, chunks). Returns chunks per namespace.

    An embedded database that cannot be opened is first moved aside to ``chroma.damaged-<time>`` (nothing is
    deleted).
    """
    from lift_memory.retrieval.store import ChromaStore

    path = Path(path).expanduser()
    try:
        store = ChromaStore(path, embedder=embedder, host=host, port=port)
    except StoreCorruptedError:
        import time

        with storage_errors(f"the index {path}"):
            if host is None:
                os.replace(path / "chroma", path / f"chroma.damaged-{time.time_ns()}")
            else:
                (path / "folder-id").unlink(missing_ok=True)  # collections under a new id are made below
        store = ChromaStore(path, embedder=embedder, host=host, port=port)
    try:
        documents = list(documents)
        store.clear({namespace for namespace, *_ in documents})
        done: dict[str, int] = {}
        for namespace, doc_id, doc_hash, chunks in documents:
            done[namespace] = done.get(namespace, 0) + store.add(namespace, doc_id, chunks, doc_hash=doc_hash)
        return done
    finally:
        store.close()
