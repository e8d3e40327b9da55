"""Chroma plumbing for the store: the import (with our embedding function registered), the per-process lock
of an embedded database's folder, the id that keeps memory folders apart on a shared server, and what counts as
a connection failure. The only module besides the store that imports chromadb.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
import weakref
from pathlib import Path
from typing import Any

from lift_memory.errors import ConfigError, StoreCorruptedError, StoreLockedError
from lift_memory.files import storage_errors
from lift_memory.retrieval.chunklog import REBUILD
from lift_memory.retrieval.embeddings import Embedder, embedder_identity

_EF_NAME = "lift_memory"
_HELD_LOCKS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_HELD_LOCKS_GUARD = threading.Lock()


def chroma_types():
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


def lock_for(path: Path):
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


def folder_id(path: Path) -> str:
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
        raise StoreCorruptedError(f"cannot read {file} ({type(exc).__name__}); {REBUILD}") from exc
    if not re.fullmatch(r"[0-9a-f]{12}", folder_id):
        raise StoreCorruptedError(f"{file} holds no folder id; {REBUILD}")
    return folder_id


_CONNECTION_ERRORS = {"ConnectError", "ConnectTimeout", "RemoteProtocolError", "ReadTimeout", "NewConnectionError"}


def is_connection_error(exc: BaseException | None) -> bool:
    """A connection failure, whichever layer reported it (the OS, httpx, urllib3), or wrapped by chromadb."""
    while exc is not None:
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        if {cls.__name__ for cls in type(exc).__mro__} & _CONNECTION_ERRORS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
