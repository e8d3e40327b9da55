"""The chunk store: Chroma collections per namespace, a chunk log beside them, and their faults.

Three modes: embedded and persistent under a directory (the default), a real Chroma server over HTTP
(``host``/``port``), or in memory (tests). Chroma is the dense index; the *chunk log* — one JSON file per
document under ``<dir>/namespaces/<namespace>/chunks/``, with the hash of the text it was cut from — feeds
BM25 and says which chunks are current. Everything here is derived from the stored documents, and
``factory.rebuild_store`` re-creates it from them. Namespaces live under ``namespaces/``, so none can collide with
Chroma's own folder. A directory this process may not write is opened read-only, from a private copy of the
database, so asking needs no write access. This is the only module that imports chromadb.

Faults are typed: an unreachable server is retried briefly (tenacity, exponential backoff with jitter) and
then reported as :class:`StoreUnavailableError`; a directory held by another process is
:class:`StoreLockedError`; an index that cannot be opened is :class:`StoreCorruptedError`, whose message
names the rebuild command. Writes are idempotent (chunk ids derive from content) and a failed write leaves
what was stored before intact. Chroma's telemetry is off.
"""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lift_memory.errors import (
    StorageError,
    StoreCorruptedError,
    StoreUnavailableError,
    first_line,
)
from lift_memory.files import storage_errors, writable
from lift_memory.ids import validate_id
from lift_memory.retrieval.chroma import chroma_types, folder_id, is_connection_error, lock_for
from lift_memory.retrieval.chunking import Chunk
from lift_memory.retrieval.chunklog import NAMESPACES, REBUILD, ChunkLog, from_rows, move_old_layout
from lift_memory.retrieval.embeddings import Embedder

T = TypeVar("T")
_DISK_FULL = ("disk is full", "no space left", "disk quota")
_NEARLY_FULL = 16 << 20  # bytes free below which a failing embedded database is taken to be out of space


class ChromaStore:
    """Chunks of documents, by namespace, in Chroma plus a chunk log.

    Args:
        path: directory for the embedded database, the chunk log and the BM25 index. With ``host``, only the
            chunk log and BM25 live here. None (and no host): in memory, nothing persisted.
        host, port: a Chroma server to use instead of the embedded database (``chroma run``).
        embedder: dense embedder (default: the bundled all-MiniLM-L6-v2).
        retries: attempts for calls to a server before :class:`StoreUnavailableError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        host: str | None = None,
        port: int = 8000,
        embedder: Embedder | None = None,
        retries: int = 3,
    ) -> None:
        from chromadb.config import Settings

        chromadb, ef_class = chroma_types()
        if embedder is None:
            from lift_memory.retrieval.embeddings import default_embedder

            embedder = default_embedder()
        self.embedder = embedder
        self.path = Path(path).expanduser() if path is not None else None
        self.host, self.port, self.retries = host, port, retries
        self._ef = ef_class(embedder)
        self.log = ChunkLog(self.path)
        self._counts: dict[str, tuple[int, int]] = {}
        self._collections: dict[str, Any] = {}
        self._lock = None
        self.read_only = False
        self._prefix = "lift-"
        settings = Settings(anonymized_telemetry=False, allow_reset=True)
        if host is not None:
            self.mode = "server"
            if self.path is not None:  # memory folders that share a server keep their collections apart
                self._prefix = f"lift-{folder_id(self.path)}-"
            self._client = self._call(lambda: chromadb.HttpClient(host=host, port=port, settings=settings))
            self._call(self._client.heartbeat)
        elif self.path is not None:
            self.mode = "persistent"
            database = self.path / "chroma"
            if writable(self.path):
                with storage_errors(f"the index {self.path}"):
                    self.path.mkdir(parents=True, exist_ok=True)
                    move_old_layout(self.path)
                self._lock = lock_for(self.path)
            else:
                database = self._private_copy(database)
            client = None
            try:
                client = chromadb.PersistentClient(str(database), settings=settings)
                client.list_collections()
            except Exception as exc:  # chromadb raises assorted types for a damaged database
                if client is not None:
                    client.close()  # or the damaged database stays cached in this process
                raise StoreCorruptedError(
                    f"cannot open the Chroma database under {self.path} ({type(exc).__name__}: "
                    f"{first_line(exc)}); {REBUILD}"
                ) from exc
            self._client = client
        else:
            self.mode = "memory"
            # All ephemeral clients of a process share one in-memory system: a per-store prefix keeps stores apart.
            self._prefix = f"lift-{uuid.uuid4().hex[:8]}-"
            self._client = chromadb.EphemeralClient(settings=settings)

    def _private_copy(self, database: Path) -> Path:
        """A read-only root: Chroma cannot open a database it may not write, so open a private copy (removed
        with the store). Writes are refused with :class:`StorageError`."""
        import shutil
        import tempfile

        self.read_only = True
        copy = Path(tempfile.mkdtemp(prefix="lift-memory-readonly-"))
        weakref.finalize(self, shutil.rmtree, copy, True)
        if database.is_dir():
            shutil.copytree(database, copy / "chroma")
        return copy / "chroma"

    def _writing(self) -> None:
        if self.read_only:
            raise StorageError(f"the index {self.path} is read-only for this user; asking works, writing does not")
        if self._disk_nearly_full():
            # chromadb 1.5's embedded database can hang (holding the GIL) when a write meets a full disk: it is
            # never asked to write with less than this much room.
            raise StorageError(
                f"cannot write the index {self.path}: less than {_NEARLY_FULL >> 20} MiB free on its disk; free "
                "some space and retry (nothing stored before was changed)"
            )

    # -- calls to Chroma ---------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; against a server, retry connection failures briefly; raise typed errors for what a user
        can act on (an unreachable server, a full disk, a damaged database)."""
        if self.host is not None:
            from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

            fn = retry(
                retry=retry_if_exception(is_connection_error),
                stop=stop_after_attempt(self.retries),
                wait=wait_exponential_jitter(multiplier=0.1, max=1.0),
                reraise=True,
            )(fn)
        try:
            return fn()
        except Exception as exc:
            if self.host is not None and is_connection_error(exc):
                raise StoreUnavailableError(
                    f"the Chroma server at {self.host}:{self.port} is unreachable after {self.retries} attempts "
                    f"({type(exc).__name__}); start it with `chroma run --host {self.host} --port {self.port}`"
                ) from exc
            where = f"the Chroma server at {self.host}:{self.port}" if self.host else f"the index {self.path}"
            message = first_line(exc)
            if any(sign in message.lower() for sign in _DISK_FULL) or self._disk_nearly_full():
                raise StorageError(
                    f"cannot write {where}: the disk is full; free some space and retry (nothing stored before "
                    "was changed)"
                ) from exc
            if type(exc).__name__ == "InternalError" and self.host is None:  # chromadb's, for a damaged database
                raise StoreCorruptedError(f"{where} failed ({message}); {REBUILD}") from exc
            raise

    def _disk_nearly_full(self) -> bool:
        """Whether the embedded database's file system is nearly full: Chroma then fails in ways that do not
        say so (e.g. "Error in compaction")."""
        import shutil

        try:
            return self.host is None and self.path is not None and shutil.disk_usage(self.path).free < _NEARLY_FULL
        except OSError:
            return False

    def _collection(self, namespace: str):
        validate_id(namespace, "namespace")
        if namespace not in self._collections:
            self._collections[namespace] = self._call(
                lambda: self._client.get_or_create_collection(
                    self._prefix + namespace, embedding_function=self._ef, configuration={"hnsw": {"space": "cosine"}}
                )
            )
        return self._collections[namespace]

    # -- the chunk log (reads) -----------------------------------------------------------------------------

    def namespace_dir(self, namespace: str) -> Path | None:
        return self.log.namespace_dir(namespace)

    def chunks(self, namespace: str, doc_id: str | None = None) -> list[Chunk]:
        return self.log.chunks(namespace, doc_id)

    def chunk(self, namespace: str, chunk_id: str) -> Chunk | None:
        return self.log.chunk(namespace, chunk_id)

    def doc_ids(self, namespace: str) -> list[str]:
        return self.log.doc_ids(namespace)

    def doc_hash(self, namespace: str, doc_id: str) -> str | None:
        return self.log.doc_hash(namespace, doc_id)

    def namespaces(self) -> list[str]:
        return self.log.namespaces()

    def version(self, namespace: str) -> int:
        return self.log.version(namespace)

    def snapshot(self, namespace: str, doc_id: str) -> dict[str, Any] | None:
        """What ``namespace`` holds of ``doc_id``, as JSON for :meth:`restore` (None: nothing)."""
        return self.log.snapshot(namespace, doc_id)

    def restore(self, namespace: str, doc_id: str, snapshot: dict[str, Any] | None) -> None:
        """Make ``namespace`` hold exactly ``snapshot`` of ``doc_id`` again (chunks are embedded anew)."""
        if snapshot is None:
            self.delete(namespace, doc_id)
        else:
            self.add(namespace, doc_id, from_rows(doc_id, snapshot["chunks"]), doc_hash=snapshot["doc_hash"])

    # -- writes ------------------------------------------------------------------------------------------

    def add(
        self, namespace: str, doc_id: str, chunks: Sequence[Chunk], *, doc_hash: str | None = None, embeddings=None
    ) -> int:
        """Store ``chunks`` of ``doc_id`` (replacing the document's earlier chunks); returns how many.

        ``doc_hash`` (the hash of the text they were cut from) is kept in the chunk log, so readers can tell
        current chunks from those of a replaced text. ``embeddings`` (one vector per chunk) skips the
        embedder, e.g. when vectors are already known; otherwise only texts the document's stored chunks do not
        have are embedded (an edit re-embeds only the chunks it changed). The chunk log is written last: until it is, readers
        that check it see the document's earlier chunks.
        """
        validate_id(doc_id)
        self._writing()
        collection = self._collection(namespace)
        include = [] if embeddings is not None else ["documents", "embeddings"]  # vectors to reuse, when it embeds
        stored = self._call(lambda: collection.get(where={"doc_id": doc_id}, include=include))
        if embeddings is not None:
            vectors = list(embeddings)
        else:  # an edited document: only the chunks whose text is new are embedded
            vectors_of = stored["embeddings"] if stored["embeddings"] is not None else []
            known = {text: list(map(float, v)) for text, v in zip(stored["documents"] or [], vectors_of, strict=True)}
            missing = list(dict.fromkeys(c.text for c in chunks if c.text not in known))
            known |= dict(zip(missing, self.embedder.embed_documents(missing) if missing else [], strict=True))
            vectors = [known[c.text] for c in chunks]
        new_ids = [c.chunk_id for c in chunks]
        old_ids = set(stored["ids"]) - set(new_ids)
        step = self._client.get_max_batch_size()
        for i in range(0, len(chunks), step):
            part = chunks[i : i + step]
            self._call(
                lambda part=part, i=i: collection.upsert(
                    ids=new_ids[i : i + step],
                    documents=[c.text for c in part],
                    embeddings=vectors[i : i + step],
                    metadatas=[
                        {"doc_id": c.doc_id, "index": c.index, "char_start": c.char_start, "char_end": c.char_end}
                        for c in part
                    ],
                )
            )
        if old_ids:  # an earlier version of the document left chunks that no longer exist
            self._call(lambda: collection.delete(ids=sorted(old_ids)))
        self.log.set(namespace, doc_id, chunks, doc_hash)
        return len(chunks)

    def delete(self, namespace: str, doc_id: str) -> None:
        """Remove every chunk of ``doc_id`` from ``namespace``."""
        validate_id(doc_id)
        self._writing()
        collection = self._collection(namespace)
        self._call(lambda: collection.delete(where={"doc_id": doc_id}))
        self.log.set(namespace, doc_id, None, None)

    def clear(self, namespaces: Iterable[str] = ()) -> None:
        """Drop the chunk logs and BM25 indexes of every namespace, and its collections: in an embedded
        database all of this store's, on a shared server those of the namespaces in the log and in
        ``namespaces`` (``rebuild_store`` refills them)."""
        import shutil

        self._writing()
        ours = {self._prefix + ns for ns in [*self.namespaces(), *namespaces]}
        for collection in self._call(self._client.list_collections):
            if collection.name in ours or (self.mode != "server" and collection.name.startswith(self._prefix)):
                self._call(lambda name=collection.name: self._client.delete_collection(name))
        self._collections.clear()
        if self.path is not None:
            with storage_errors(f"the index {self.path}"):
                shutil.rmtree(self.path / NAMESPACES, ignore_errors=True)
        self.log.clear()

    # -- reads -------------------------------------------------------------------------------------------

    def dense(self, namespace: str, query: str, k: int, doc_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The ``k`` chunks nearest to ``query`` (cosine); each hit with its similarity as ``score``."""
        collection = self._collection(namespace)
        if not k or self.count(namespace) == 0:
            return []
        vector = self.embedder.embed_query(query)
        result = self._call(
            lambda: collection.query(
                query_embeddings=[vector],
                n_results=k,
                where=_doc_filter(doc_ids),
                include=["documents", "metadatas", "distances"],
            )
        )
        return [
            _hit(chunk_id, text, meta, 1.0 - distance)
            for chunk_id, text, meta, distance in zip(
                result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]

    def containing(
        self,
        namespace: str,
        phrases: Sequence[str],
        k: int,
        doc_ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``k`` chunks that contain at least one of ``phrases`` verbatim (Chroma's ``$contains``), in
        document order; one scan (~40 ms at 100k chunks) for all phrases."""
        if not phrases or k <= 0:
            return []
        collection = self._collection(namespace)
        contains = [{"$contains": p} for p in phrases]
        result = self._call(
            lambda: collection.get(
                where_document=contains[0] if len(contains) == 1 else {"$or": contains},
                where=_doc_filter(doc_ids),
                limit=k,
                include=["documents", "metadatas"],
            )
        )
        hits = [
            _hit(i, t, m, 1.0) for i, t, m in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
        ]
        return sorted(hits, key=lambda h: (h["doc_id"], h["char_start"]))

    def count(self, namespace: str) -> int:
        """Chunks in the dense index of ``namespace`` (remembered between writes, except on a shared server)."""
        known = self._counts.get(namespace)
        if known is not None and known[0] == self.version(namespace) and self.mode != "server":
            return known[1]
        n = self._call(self._collection(namespace).count)
        self._counts[namespace] = (self.version(namespace), n)
        return n

    def close(self) -> None:
        """Release the database and the directory lock (the lock goes once no store of this process uses it)."""
        self._collections.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._lock = None


def _doc_filter(doc_ids: Iterable[str] | None) -> dict[str, Any] | None:
    if doc_ids is None:
        return None
    ids = sorted(set(doc_ids))
    return {"doc_id": ids[0]} if len(ids) == 1 else {"doc_id": {"$in": ids}}


def _hit(chunk_id: str, text: str, meta: dict[str, Any], score: float) -> dict[str, Any]:
    return {
        "chunk_id": chunk_id,
        "doc_id": meta["doc_id"],
        "text": text,
        "char_start": int(meta["char_start"]),
        "char_end": int(meta["char_end"]),
        "index": int(meta["index"]),
        "score": float(score),
    }
