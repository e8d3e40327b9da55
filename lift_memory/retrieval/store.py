"""The chunk store: Chroma collections per namespace, a chunk log beside them, and their faults.

Three modes: embedded and persistent under a directory (the default), a real Chroma server over HTTP
(``host``/``port``), or in memory (tests). Chroma is the dense index; the *chunk log* — one JSON file per
document under ``<dir>/namespaces/<namespace>/chunks/``, with the hash of the text it was cut from — feeds
BM25 and says which chunks are current. Everything here is derived from the stored documents, and
``rebuild_store`` re-creates it from them. Namespaces live under ``namespaces/``, so none can collide with
Chroma's own folder. A directory this process may not write is opened read-only, from a private copy of the
database, so asking needs no write access. This is the only module that imports chromadb.

Faults are typed: an unreachable server is retried briefly (tenacity, exponential backoff with jitter) and
then reported as :class:`StoreUnavailableError`; a directory held by another process is
:class:`StoreLockedError`; an index that cannot be opened is :class:`StoreCorruptedError`, whose message
names the rebuild command. Writes are idempotent (chunk ids derive from content) and a failed write leaves
what was stored before intact. Chroma's telemetry is off.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lift_memory.errors import (
    ConfigError,
    StorageError,
    StoreCorruptedError,
    StoreLockedError,
    StoreUnavailableError,
    first_line,
)
from lift_memory.files import atomic_write, storage_errors, writable
from lift_memory.ids import validate_id
from lift_memory.retrieval.chunking import Chunk
from lift_memory.retrieval.embeddings import Embedder, embedder_identity

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

T = TypeVar("T")
_EF_NAME = "lift_memory"
_HELD_LOCKS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_HELD_LOCKS_GUARD = threading.Lock()
NAMESPACES = "namespaces"
_REBUILD = "re-create it from the stored documents with `lift-memory rebuild`"
_DISK_FULL = ("disk is full", "no space left", "disk quota")
_NEARLY_FULL = 16 << 20  # bytes free below which a failing embedded database is taken to be out of space


def _chroma_types():
    """Import chromadb once, registering our embedding function so reopened collections find it."""
    import chromadb
    from chromadb.api.types import EmbeddingFunction
    from chromadb.utils.embedding_functions import known_embedding_functions, register_embedding_function

    if _EF_NAME not in known_embedding_functions:

        class LiftEmbeddingFunction(EmbeddingFunction):
            """Chroma's view of a lift_memory :class:`Embedder`."""

            def __init__(self, embedder: Embedder | None = None, identity: dict[str, Any] | None = None) -> None:
                self.embedder = embedder
                self.identity = identity or (embedder_identity(embedder) if embedder is not None else {})

            def __call__(self, input):
                return self._get().embed_documents(list(input))

            def embed_query(self, input):
                return [self._get().embed_query(text) for text in input]

            def _get(self) -> Embedder:
                if self.embedder is None:
                    from lift_memory.retrieval.embeddings import SentenceTransformerEmbedder

                    if self.identity.get("kind") != "sentence-transformers":
                        raise ConfigError(f"cannot rebuild embedder {self.identity}; pass it to the store")
                    self.embedder = SentenceTransformerEmbedder(self.identity["model"])
                return self.embedder

            @staticmethod
            def name() -> str:
                return _EF_NAME

            def get_config(self) -> dict[str, Any]:
                return dict(self.identity)

            @staticmethod
            def build_from_config(config: dict[str, Any]) -> LiftEmbeddingFunction:
                return LiftEmbeddingFunction(identity=config)

            def default_space(self) -> str:
                return "cosine"

        register_embedding_function(LiftEmbeddingFunction)
    return chromadb, known_embedding_functions[_EF_NAME]


def _lock_for(path: Path):
    """One lock object per directory and process: a second process is refused, this one shares it."""
    from filelock import FileLock, Timeout

    key = str(path.resolve())
    with _HELD_LOCKS_GUARD:
        lock = _HELD_LOCKS.get(key)
        if lock is None:
            lock = FileLock(key + ".lock", timeout=0)
            try:
                lock.acquire()
            except Timeout:
                raise StoreLockedError(
                    f"the store at {path} is in use by another process; close it, or run a Chroma server "
                    "(`chroma run`) and point every process at it with host/port"
                ) from None
            _HELD_LOCKS[key] = lock
        return lock


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

        chromadb, ef_class = _chroma_types()
        if embedder is None:
            from lift_memory.retrieval.embeddings import default_embedder

            embedder = default_embedder()
        self.embedder = embedder
        self.path = Path(path).expanduser() if path is not None else None
        self.host, self.port, self.retries = host, port, retries
        self._ef = ef_class(embedder)
        self._log: dict[str, dict[str, list[Chunk]]] = {}
        self._hashes: dict[str, dict[str, str | None]] = {}
        self._by_id: dict[str, dict[str, Chunk]] = {}
        self._versions: dict[str, int] = {}
        self._counts: dict[str, tuple[int, int]] = {}
        self._collections: dict[str, Any] = {}
        self._log_stamp: dict[str, int] = {}
        self._lock = None
        self.read_only = False
        self._prefix = "lift-"
        settings = Settings(anonymized_telemetry=False, allow_reset=True)
        if host is not None:
            self.mode = "server"
            if self.path is not None:  # memory folders that share a server keep their collections apart
                self._prefix = f"lift-{_folder_id(self.path)}-"
            self._client = self._call(lambda: chromadb.HttpClient(host=host, port=port, settings=settings))
            self._call(self._client.heartbeat)
        elif self.path is not None:
            self.mode = "persistent"
            database = self.path / "chroma"
            if writable(self.path):
                with storage_errors(f"the index {self.path}"):
                    self.path.mkdir(parents=True, exist_ok=True)
                    _move_old_layout(self.path)
                self._lock = _lock_for(self.path)
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
                    f"{first_line(exc)}); {_REBUILD}"
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
                retry=retry_if_exception(_is_connection_error),
                stop=stop_after_attempt(self.retries),
                wait=wait_exponential_jitter(multiplier=0.1, max=1.0),
                reraise=True,
            )(fn)
        try:
            return fn()
        except Exception as exc:
            if self.host is not None and _is_connection_error(exc):
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
                raise StoreCorruptedError(f"{where} failed ({message}); {_REBUILD}") from exc
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

    # -- the chunk log -----------------------------------------------------------------------------------

    def namespace_dir(self, namespace: str) -> Path | None:
        """Where the chunk log and the BM25 index of ``namespace`` live (None in memory)."""
        return None if self.path is None else self.path / NAMESPACES / validate_id(namespace, "namespace")

    def _log_dir(self, namespace: str) -> Path | None:
        folder = self.namespace_dir(namespace)
        return None if folder is None else folder / "chunks"

    def _docs(self, namespace: str) -> dict[str, list[Chunk]]:
        """The chunk log of ``namespace``, read from disk and re-read when another process changed it."""
        folder = self._log_dir(namespace)
        stamp = _stamp(folder)
        if namespace not in self._log or stamp != self._log_stamp.get(namespace):
            docs: dict[str, list[Chunk]] = {}
            hashes: dict[str, str | None] = {}
            for file in sorted(folder.glob("*.json")) if folder and folder.is_dir() else []:
                docs[file.stem], hashes[file.stem] = _read_log(file, namespace)
            self._log[namespace], self._hashes[namespace] = docs, hashes
            self._by_id[namespace] = {c.chunk_id: c for chunks in docs.values() for c in chunks}
            self._log_stamp[namespace] = stamp
            self._versions[namespace] = self._versions.get(namespace, 0) + 1
        return self._log[namespace]

    def _set_log(self, namespace: str, doc_id: str, chunks: Sequence[Chunk] | None, doc_hash: str | None) -> None:
        docs, by_id = self._docs(namespace), self._by_id[namespace]
        folder = self._log_dir(namespace)
        if folder is not None:
            if chunks is None:
                with storage_errors(f"the chunk log of {namespace!r}"):
                    (folder / f"{doc_id}.json").unlink(missing_ok=True)
            else:
                payload = {"doc_id": doc_id, "doc_hash": doc_hash, "chunks": _rows(chunks)}
                atomic_write(folder / f"{doc_id}.json", json.dumps(payload).encode("utf-8"))
        for old in docs.pop(doc_id, []):
            by_id.pop(old.chunk_id, None)
        self._hashes[namespace].pop(doc_id, None)
        if chunks is not None:
            docs[doc_id] = list(chunks)
            self._hashes[namespace][doc_id] = doc_hash
            by_id.update((c.chunk_id, c) for c in chunks)
        self._log_stamp[namespace] = _stamp(folder)
        self._versions[namespace] = self._versions.get(namespace, 0) + 1

    def doc_hash(self, namespace: str, doc_id: str) -> str | None:
        """The hash of the text the stored chunks of ``doc_id`` were cut from (None: none stored, or a log
        written before hashes were kept)."""
        self._docs(namespace)
        return self._hashes[namespace].get(doc_id)

    def snapshot(self, namespace: str, doc_id: str) -> dict[str, Any] | None:
        """What ``namespace`` holds of ``doc_id``, as JSON for :meth:`restore` (None: nothing)."""
        chunks = self.chunks(namespace, doc_id)
        return {"doc_hash": self.doc_hash(namespace, doc_id), "chunks": _rows(chunks)} if chunks else None

    def restore(self, namespace: str, doc_id: str, snapshot: dict[str, Any] | None) -> None:
        """Make ``namespace`` hold exactly ``snapshot`` of ``doc_id`` again (chunks are embedded anew)."""
        if snapshot is None:
            self.delete(namespace, doc_id)
        else:
            self.add(namespace, doc_id, _from_rows(doc_id, snapshot["chunks"]), doc_hash=snapshot["doc_hash"])

    def version(self, namespace: str) -> int:
        """Changes whenever the chunks of ``namespace`` change in this process."""
        return self._versions.get(namespace, 0)

    def chunks(self, namespace: str, doc_id: str | None = None) -> list[Chunk]:
        """The stored chunks of ``namespace`` (of one document when ``doc_id`` is given), in document order."""
        docs = self._docs(namespace)
        if doc_id is not None:
            return list(docs.get(validate_id(doc_id), []))
        return [c for d in sorted(docs) for c in docs[d]]

    def chunk(self, namespace: str, chunk_id: str) -> Chunk | None:
        """One stored chunk by id."""
        self._docs(namespace)
        return self._by_id[namespace].get(chunk_id)

    def doc_ids(self, namespace: str) -> list[str]:
        """Documents stored in ``namespace``."""
        return sorted(self._docs(namespace))

    def namespaces(self) -> list[str]:
        """Namespaces that hold at least one document."""
        on_disk = (
            set()
            if self.path is None
            else {p.parent.name for p in (self.path / NAMESPACES).glob("*/chunks") if any(p.glob("*.json"))}
        )
        in_memory = {ns for ns, docs in self._log.items() if docs}
        return sorted(on_disk - set(self._log) | in_memory)

    # -- writes ------------------------------------------------------------------------------------------

    def add(
        self, namespace: str, doc_id: str, chunks: Sequence[Chunk], *, doc_hash: str | None = None, embeddings=None
    ) -> int:
        """Store ``chunks`` of ``doc_id`` (replacing the document's earlier chunks); returns how many.

        ``doc_hash`` (the hash of the text they were cut from) is kept in the chunk log, so readers can tell
        current chunks from those of a replaced text. ``embeddings`` (one vector per chunk) skips the
        embedder, e.g. when vectors are already known. The chunk log is written last: until it is, readers
        that check it see the document's earlier chunks.
        """
        validate_id(doc_id)
        self._writing()
        collection = self._collection(namespace)
        vectors = (
            list(embeddings) if embeddings is not None else self.embedder.embed_documents([c.text for c in chunks])
        )
        new_ids = [c.chunk_id for c in chunks]
        old_ids = set(self._ids_of(collection, doc_id)) - set(new_ids)
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
        self._set_log(namespace, doc_id, chunks, doc_hash)
        return len(chunks)

    def _ids_of(self, collection, doc_id: str) -> list[str]:
        return self._call(lambda: collection.get(where={"doc_id": doc_id}, include=[]))["ids"]

    def delete(self, namespace: str, doc_id: str) -> None:
        """Remove every chunk of ``doc_id`` from ``namespace``."""
        validate_id(doc_id)
        self._writing()
        collection = self._collection(namespace)
        self._call(lambda: collection.delete(where={"doc_id": doc_id}))
        self._set_log(namespace, doc_id, None, None)

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
        for ns in list(self._log):
            self._log.pop(ns)
            self._versions[ns] = self._versions.get(ns, 0) + 1

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


def _folder_id(path: Path) -> str:
    """A random id kept in ``path/folder-id``, the same for every process that opens ``path`` (the first to
    create it wins)."""
    file = path / "folder-id"
    if not file.is_file():
        with storage_errors(f"the index {path}"):
            path.mkdir(parents=True, exist_ok=True)
            tmp = path / f".folder-id-{uuid.uuid4().hex}"
            tmp.write_text(uuid.uuid4().hex[:12])
            with contextlib.suppress(FileExistsError):
                os.link(tmp, file)  # atomic: fails if another process created it first
            tmp.unlink()
    try:
        folder_id = file.read_text().strip()
    except OSError as exc:
        raise StoreCorruptedError(f"cannot read {file} ({type(exc).__name__}); {_REBUILD}") from exc
    if not re.fullmatch(r"[0-9a-f]{12}", folder_id):
        raise StoreCorruptedError(f"{file} holds no folder id; {_REBUILD}")
    return folder_id


def _stamp(folder: Path | None) -> int:
    """Changes when a file is renamed into or out of ``folder`` (every chunk-log write does one)."""
    try:
        return folder.stat().st_mtime_ns if folder is not None else 0
    except OSError:
        return 0


def _read_log(file: Path, namespace: str) -> tuple[list[Chunk], str | None]:
    """One document's chunk log: its chunks and the hash of their text (None in logs of the first format)."""
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
        rows, doc_hash = (data, None) if isinstance(data, list) else (data["chunks"], data["doc_hash"])
        return _from_rows(file.stem, rows), doc_hash
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreCorruptedError(
            f"the chunk log of {file.stem!r} in namespace {namespace!r} is damaged ({type(exc).__name__}); {_REBUILD}"
        ) from exc


def _rows(chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    return [{"index": c.index, "text": c.text, "char_start": c.char_start, "char_end": c.char_end} for c in chunks]


def _from_rows(doc_id: str, rows: Sequence[dict[str, Any]]) -> list[Chunk]:
    return [Chunk(doc_id, r["index"], r["text"], r["char_start"], r["char_end"]) for r in rows]


def _move_old_layout(path: Path) -> None:
    """Move namespaces of the first layout (``<dir>/<namespace>/chunks``) under ``namespaces/``."""
    for log in list(path.glob("*/chunks")):
        if log.parent.name not in (NAMESPACES, "chroma"):
            (path / NAMESPACES).mkdir(exist_ok=True)
            os.replace(log.parent, path / NAMESPACES / log.parent.name)


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


_CONNECTION_ERRORS = {"ConnectError", "ConnectTimeout", "RemoteProtocolError", "ReadTimeout", "NewConnectionError"}


def _is_connection_error(exc: BaseException | None) -> bool:
    """A connection failure, whichever layer reported it (the OS, httpx, urllib3), or wrapped by chromadb."""
    while exc is not None:
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        if {cls.__name__ for cls in type(exc).__mro__} & _CONNECTION_ERRORS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def rebuild_store(
    path: str | os.PathLike[str],
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
