"""The chunk log: the source of truth of the index. One JSON file per document under
``<dir>/namespaces/<namespace>/chunks/``, holding its chunks and the hash of the text they were cut from. It
feeds BM25 and says which chunks are current; the Chroma collections (:mod:`~lift_memory.retrieval.store`) are
the dense index over it. In memory when there is no folder (tests).

Each write renames one file into place, so a reader sees a document's chunks whole, old or new; a log another
process changed is read anew (the folder's mtime changes with every rename).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lift_memory.errors import StoreCorruptedError
from lift_memory.files import atomic_write, storage_errors
from lift_memory.ids import validate_id
from lift_memory.retrieval.chunking import Chunk

NAMESPACES = "namespaces"
REBUILD = "re-create it from the stored documents with `lift-memory rebuild`"


class ChunkLog:
    """The chunks of every document, by namespace, under ``path`` (None: in memory)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._log: dict[str, dict[str, list[Chunk]]] = {}
        self._hashes: dict[str, dict[str, str | None]] = {}
        self._by_id: dict[str, dict[str, Chunk]] = {}
        self._versions: dict[str, int] = {}
        self._stamps: dict[str, int] = {}

    def namespace_dir(self, namespace: str) -> Path | None:
        """Where the chunk log and the BM25 index of ``namespace`` live (None in memory)."""
        return None if self.path is None else self.path / NAMESPACES / validate_id(namespace, "namespace")

    def _dir(self, namespace: str) -> Path | None:
        folder = self.namespace_dir(namespace)
        return None if folder is None else folder / "chunks"

    def _docs(self, namespace: str) -> dict[str, list[Chunk]]:
        """The log of ``namespace``, read from disk and re-read when another process changed it."""
        folder = self._dir(namespace)
        stamp = _stamp(folder)
        if namespace not in self._log or stamp != self._stamps.get(namespace):
            docs: dict[str, list[Chunk]] = {}
            hashes: dict[str, str | None] = {}
            for file in sorted(folder.glob("*.json")) if folder and folder.is_dir() else []:
                docs[file.stem], hashes[file.stem] = _read(file, namespace)
            self._log[namespace], self._hashes[namespace] = docs, hashes
            self._by_id[namespace] = {c.chunk_id: c for chunks in docs.values() for c in chunks}
            self._stamps[namespace] = stamp
            self._versions[namespace] = self._versions.get(namespace, 0) + 1
        return self._log[namespace]

    def set(self, namespace: str, doc_id: str, chunks: Sequence[Chunk] | None, doc_hash: str | None) -> None:
        """Record ``chunks`` (None: none) as ``doc_id``'s in ``namespace``."""
        docs, by_id = self._docs(namespace), self._by_id[namespace]
        folder = self._dir(namespace)
        if folder is not None:
            if chunks is None:
                with storage_errors(f"the chunk log of {namespace!r}"):
                    (folder / f"{doc_id}.json").unlink(missing_ok=True)
            else:
                payload = {"doc_id": doc_id, "doc_hash": doc_hash, "chunks": rows(chunks)}
                atomic_write(folder / f"{doc_id}.json", json.dumps(payload).encode("utf-8"))
        for old in docs.pop(doc_id, []):
            by_id.pop(old.chunk_id, None)
        self._hashes[namespace].pop(doc_id, None)
        if chunks is not None:
            docs[doc_id] = list(chunks)
            self._hashes[namespace][doc_id] = doc_hash
            by_id.update((c.chunk_id, c) for c in chunks)
        self._stamps[namespace] = _stamp(folder)
        self._versions[namespace] = self._versions.get(namespace, 0) + 1

    def clear(self) -> None:
        """Forget every namespace (the caller removed the folder)."""
        for ns in list(self._log):
            self._log.pop(ns)
            self._versions[ns] = self._versions.get(ns, 0) + 1

    def doc_hash(self, namespace: str, doc_id: str) -> str | None:
        """The hash of the text the stored chunks of ``doc_id`` were cut from (None: none stored, or a log
        written before hashes were kept)."""
        self._docs(namespace)
        return self._hashes[namespace].get(doc_id)

    def snapshot(self, namespace: str, doc_id: str) -> dict[str, Any] | None:
        """What ``namespace`` holds of ``doc_id``, as JSON (None: nothing)."""
        chunks = self.chunks(namespace, doc_id)
        return {"doc_hash": self.doc_hash(namespace, doc_id), "chunks": rows(chunks)} if chunks else None

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


def rows(chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    return [{"index": c.index, "text": c.text, "char_start": c.char_start, "char_end": c.char_end} for c in chunks]


def from_rows(doc_id: str, rows: Sequence[dict[str, Any]]) -> list[Chunk]:
    return [Chunk(doc_id, r["index"], r["text"], r["char_start"], r["char_end"]) for r in rows]


def move_old_layout(path: Path) -> None:
    """Move namespaces of the first layout (``<dir>/<namespace>/chunks``) under ``namespaces/``."""
    for log in list(path.glob("*/chunks")):
        if log.parent.name not in (NAMESPACES, "chroma"):
            (path / NAMESPACES).mkdir(exist_ok=True)
            os.replace(log.parent, path / NAMESPACES / log.parent.name)


def _stamp(folder: Path | None) -> int:
    """Changes when a file is renamed into or out of ``folder`` (every chunk-log write does one)."""
    try:
        return folder.stat().st_mtime_ns if folder is not None else 0
    except OSError:
        return 0


def _read(file: Path, namespace: str) -> tuple[list[Chunk], str | None]:
    """One document's log: its chunks and the hash of their text (None in logs of the first format)."""
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
        found, doc_hash = (data, None) if isinstance(data, list) else (data["chunks"], data["doc_hash"])
        return from_rows(file.stem, found), doc_hash
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreCorruptedError(
            f"the chunk log of {file.stem!r} in namespace {namespace!r} is damaged ({type(exc).__name__}); {REBUILD}"
        ) from exc
