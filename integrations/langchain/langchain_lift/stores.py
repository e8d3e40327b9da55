"""``LiftStore``: a LangGraph ``BaseStore`` whose search is lift-memory's hybrid retrieval.

Agents built with LangChain's agent APIs take their long-term memory as ``store=``. Items (namespace, key,
JSON value) live in SQLite beside the memory; an item's text is indexed in lift-memory's retrieval store
under a namespace of its own, so ``search(query=...)`` is dense + BM25 + exact-phrase retrieval with scores.
With ``memorize_every=N``, every N indexed puts in a namespace also fine-tune that namespace's adapter on
all its items, in a background worker, never under the store's lock (``flush()`` trains what is due and waits);
deleting an item retrains its namespace's adapter without it. ``adapter_doc_id(namespace)`` names that adapter
for ``ChatLIFT(doc_id=...)``.

Only ``batch`` is implemented; everything else (``get``, ``put``, ``search``, ``delete``, ``list_namespaces``
and their async forms) comes from ``BaseStore``, and ``abatch`` runs ``batch`` in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path

from langchain_lift._memory import open_memory
from lift_memory.errors import InvalidDocumentError, StorageError

_SEP = "\x1f"  # joins namespace labels in the database (labels cannot contain it usefully)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    doc_id TEXT,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS items_doc ON items (doc_id);
"""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def lift_namespace(namespace: tuple[str, ...]) -> str:
    """The lift-memory retrieval namespace that holds the items of a LangGraph namespace."""
    return "lg-" + _digest(*namespace)[:16]


def adapter_doc_id(namespace: tuple[str, ...]) -> str:
    """The lift-memory document whose adapter memorizes a LangGraph namespace (with ``memorize_every``)."""
    return "lg-adapter-" + _digest(*namespace)[:16]


def _compare(value: Any, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        checks = {
            "$eq": lambda a, b: a == b,
            "$ne": lambda a, b: a != b,
            "$gt": lambda a, b: a is not None and a > b,
            "$gte": lambda a, b: a is not None and a >= b,
            "$lt": lambda a, b: a is not None and a < b,
            "$lte": lambda a, b: a is not None and a <= b,
        }
        return all(checks[op](value, target) for op, target in condition.items())
    return value == condition


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


class LiftStore(BaseStore):
    """LangGraph long-term memory backed by lift-memory.

    Example:
        ```python
        from lift_memory import LiftMemory
        from langchain_lift import LiftStore

        store = LiftStore(LiftMemory(root="./memories"))
        store.put(("users", "ada"), "pref-1", {"text": "Ada prefers tea, never coffee."})
        hits = store.search(("users",), query="what does Ada drink?", limit=3)
        print(hits[0].value["text"], hits[0].score)
        ```

    Args:
        memory: the ``LiftMemory`` to index into (None: one opened at ``root`` with ``model``).
        root: memory directory when ``memory`` is None.
        model: base model when ``memory`` is None (None: lift-memory's default).
        index: LangGraph's index configuration, as ``InMemoryStore`` takes it: ``fields`` (default ``["$"]``),
            ``embed`` (a LangChain ``Embeddings`` or a function from texts to vectors; only with ``memory``
            None, since a memory's embedder is its own) and ``dims`` (checked against ``embed``).
        index_fields: JSON paths of the value whose text is indexed (LangGraph's syntax, e.g. ``"text"``,
            ``"notes[*].body"``); ``"$"`` indexes the whole value as JSON. Default ``["text"]``; or give
            ``index["fields"]``.
        memorize_every: after this many indexed puts into a namespace, fine-tune its adapter on all its items
            (None: never; call :meth:`flush` to do it on demand).
        path: SQLite file for the items (default: ``<memory root>/langgraph.sqlite``).
    """

    supports_ttl = False

    def __init__(
        self,
        memory: Any = None,
        *,
        root: str | None = None,
        model: str | None = None,
        index: dict[str, Any] | None = None,
        index_fields: Sequence[str] | None = None,
        memorize_every: int | None = None,
        path: str | Path | None = None,
    ) -> None:
        embed, fields = _index_config(index, index_fields)
        if embed is not None and memory is not None:
            raise ValueError("index['embed'] is for a memory this store opens; give your memory its embedder: "
                             "LiftMemory(embedder=...)")  # fmt: skip
        if memorize_every is not None and memorize_every < 1:
            raise ValueError(f"memorize_every must be at least 1 (or None), got {memorize_every}")
        self.memory = open_memory(memory, root, model, embedder=embed)
        self.index_fields = fields
        self.memorize_every = memorize_every
        db = Path(path) if path is not None else self.memory.root / "langgraph.sqlite"
        db.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._pending: dict[tuple[str, ...], int] = {}
        self._trainer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lift-store-train")
        self._queued: set[tuple[str, ...]] = set()
        self._jobs: list[concurrent.futures.Future] = []

    # -- the two abstract methods ------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order; results line up with them (``None`` for puts)."""
        results: list[Result] = []
        with self._lock:
            for op in ops:
                if isinstance(op, GetOp):
                    results.append(self._get(op.namespace, op.key))
                elif isinstance(op, PutOp):
                    self._put(op)
                    results.append(None)
                elif isinstance(op, SearchOp):
                    results.append(self._search(op))
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(op))
                else:
                    raise TypeError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` in a worker thread: the model and the database are synchronous."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- operations --------------------------------------------------------------------------------------

    def _row_item(self, row, score: float | None = None, searched: bool = False) -> Item:
        namespace, key, value, created, updated = row[:5]
        fields = {
            "namespace": tuple(namespace.split(_SEP)) if namespace else (),
            "key": key,
            "value": json.loads(value),
            "created_at": dt.datetime.fromisoformat(created),
            "updated_at": dt.datetime.fromisoformat(updated),
        }
        return SearchItem(**fields, score=score) if searched else Item(**fields)

    def _get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        row = self._db.execute(
            "SELECT namespace, key, value, created_at, updated_at FROM items WHERE namespace = ? AND key = ?",
            (_SEP.join(namespace), key),
        ).fetchone()
        return None if row is None else self._row_item(row)

    def _text(self, value: dict[str, Any], fields: Sequence[str]) -> str:
        parts: list[str] = []
        for field in fields:
            if field == "$":
                parts.append(json.dumps(value, ensure_ascii=False))
            else:
                parts.extend(str(t) for t in get_text_at_path(value, field))
        return "\n".join(p for p in parts if p and p.strip())

    def _put(self, op: PutOp) -> None:
        """Validate first (the value must be JSON), then change the index, then the row; if the row cannot be
        written, the index is put back as it was."""
        ns = _SEP.join(op.namespace)
        row = self._db.execute(
            "SELECT doc_id, created_at, value FROM items WHERE namespace = ? AND key = ?", (ns, op.key)
        ).fetchone()
        if op.value is None:
            if row and row[0] and row[0] in self.memory.bank:
                self.memory.forget(row[0])
            self._db.execute("DELETE FROM items WHERE namespace = ? AND key = ?", (ns, op.key))
            if row and row[0] and adapter_doc_id(op.namespace) in self.memory.bank:
                self._schedule(op.namespace)  # the deleted text leaves the adapter: train it again without it
            return
        try:
            value = json.dumps(op.value)
        except (TypeError, ValueError) as exc:
            raise InvalidDocumentError(f"the value of {op.key!r} cannot be stored as JSON: {exc}") from exc
        fields = self.index_fields if op.index is None else (op.index or [])
        text = self._text(dict(op.value), fields) if op.index is not False else ""
        doc_id = "kv-" + _digest(*op.namespace, op.key)[:24] if text else None
        self._index_item(op.namespace, op.key, doc_id, text, row[0] if row else None)
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?)",
                (ns, op.key, value, row[1] if row else now, now, doc_id),
            )
        except sqlite3.Error as exc:
            old_text = self._text(json.loads(row[2]), self.index_fields) if row and row[0] else ""
            self._index_item(op.namespace, op.key, row[0] if row else None, old_text, doc_id)
            raise StorageError(f"cannot write the item {op.key!r}: {exc}; the store is unchanged") from exc
        if doc_id and self.memorize_every:
            self._pending[op.namespace] = self._pending.get(op.namespace, 0) + 1
            if self._pending[op.namespace] >= self.memorize_every:
                self._schedule(op.namespace)

    def _index_item(self, namespace, key: str, doc_id: str | None, text: str, old_doc_id: str | None) -> None:
        """Make the index hold ``text`` as ``doc_id`` (None: nothing) and drop ``old_doc_id`` if it differs."""
        if doc_id:
            self.memory.memorize(
                text, doc_id=doc_id, title=key, train=False, replace=True, namespace=lift_namespace(namespace)
            )
        if old_doc_id and old_doc_id != doc_id and old_doc_id in self.memory.bank:
            self.memory.forget(old_doc_id)

    def _schedule(self, namespace: tuple[str, ...]) -> None:
        """Queue the training of ``namespace``'s adapter in the background worker (once while it waits)."""
        self._pending[namespace] = 0
        if namespace not in self._queued:
            self._queued.add(namespace)
            self._jobs.append(self._trainer.submit(self._memorize_namespace, namespace))

    def _memorize_namespace(self, namespace: tuple[str, ...]) -> None:
        """Train ``namespace``'s adapter on its items as they are now (the worker; the store's lock is held only
        to read them); with no items left, forget the adapter."""
        with self._lock:
            self._queued.discard(namespace)
            rows = self._db.execute(
                "SELECT value FROM items WHERE namespace = ? AND doc_id IS NOT NULL ORDER BY created_at",
                (_SEP.join(namespace),),
            ).fetchall()
            texts = [self._text(json.loads(r[0]), self.index_fields) for r in rows]
        doc_id = adapter_doc_id(namespace)
        if any(texts):
            text = "\n\n".join(t for t in texts if t)
            self.memory.memorize(text, doc_id=doc_id, train=True, index=False, replace=True)
        elif doc_id in self.memory.bank:
            self.memory.forget(doc_id)

    def training(self) -> list[tuple[str, ...]]:
        """Namespaces whose adapter is queued for training (their adapter does not yet reflect every put and
        delete)."""
        with self._lock:
            return sorted(self._queued)

    def wait(self) -> None:
        """Wait until the background worker has trained what it was given; raise its first failure."""
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()

    def flush(self) -> list[tuple[str, ...]]:
        """Train the adapter of every namespace with puts not yet memorized, and wait for all training; returns
        the namespaces that were due."""
        with self._lock:
            due = [ns for ns, n in self._pending.items() if n]
            for ns in due:
                self._schedule(ns)
        self.wait()
        return due

    def _namespaces(self) -> list[tuple[str, ...]]:
        rows = self._db.execute("SELECT DISTINCT namespace FROM items").fetchall()
        return sorted(tuple(r[0].split(_SEP)) if r[0] else () for r in rows)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        spaces = [ns for ns in self._namespaces() if ns[: len(prefix)] == prefix]
        keep = op.limit + op.offset
        columns = "namespace, key, value, created_at, updated_at"
        scored: list[tuple[float | None, Any]] = []
        if op.query:
            best: dict[str, float] = {}
            for ns in spaces:
                k = max(2 * keep, 10)
                if op.filter:  # filter first, then truncate: rank every item of the namespace
                    n = self._db.execute(
                        "SELECT COUNT(*) FROM items WHERE namespace = ? AND doc_id IS NOT NULL", (_SEP.join(ns),)
                    ).fetchone()[0]
                    k = max(k, 8 * n)
                for hit in self.memory.retrieve(op.query, namespace=lift_namespace(ns), k=k):
                    best[hit.doc_id] = max(best.get(hit.doc_id, 0.0), hit.score)
            for doc_id, score in best.items():
                row = self._db.execute(f"SELECT {columns} FROM items WHERE doc_id = ?", (doc_id,)).fetchone()
                if row is not None:
                    scored.append((score, row))
            scored.sort(key=lambda pair: -pair[0])
        else:
            for ns in spaces:
                rows = self._db.execute(f"SELECT {columns} FROM items WHERE namespace = ?", (_SEP.join(ns),))
                scored.extend((None, row) for row in rows.fetchall())
            scored.sort(key=lambda pair: pair[1][4], reverse=True)  # most recently updated first
        if op.filter:
            scored = [
                (s, row)
                for s, row in scored
                if all(_compare(json.loads(row[2]).get(k), c) for k, c in op.filter.items())
            ]
        return [self._row_item(row, score, searched=True) for score, row in scored[op.offset : keep]]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        spaces = self._namespaces()
        if op.match_conditions:
            spaces = [ns for ns in spaces if all(_matches(c, ns) for c in op.match_conditions)]
        if op.max_depth is not None:
            spaces = sorted({ns[: op.max_depth] for ns in spaces})
        return spaces[op.offset : op.offset + op.limit]

    def close(self) -> None:
        """Finish the training in progress, then close the item database."""
        self._trainer.shutdown(wait=True)
        self._db.close()


def _index_config(index: dict[str, Any] | None, index_fields: Sequence[str] | None) -> tuple[Any, list[str]]:
    """The embedder and the indexed fields from LangGraph's ``index`` configuration (or ``index_fields``)."""
    if index is None:
        return None, list(index_fields) if index_fields is not None else ["text"]
    unknown = sorted(set(index) - {"dims", "embed", "fields"})
    if unknown:
        raise ValueError(f"unknown index keys {unknown}; LangGraph's index configuration has dims, embed, fields")
    if index_fields is not None and "fields" in index:
        raise ValueError("give the indexed fields once: index['fields'] or index_fields")
    embed = index.get("embed")
    if isinstance(embed, str):
        raise ValueError(f"index['embed']={embed!r}: pass an Embeddings object or a function, not a provider name")
    if embed is not None and not hasattr(embed, "embed_documents"):
        embed = _FunctionEmbeddings(embed)
    if embed is not None and "dims" in index:
        dims = len(embed.embed_query("dimension check"))
        if dims != index["dims"]:
            raise ValueError(f"index['dims']={index['dims']}, but the embedder returns vectors of {dims}")
    fields = index.get("fields", index_fields if index_fields is not None else ["$"])
    return embed, list(fields)


class _FunctionEmbeddings:
    """A function from texts to vectors, as the embedder interface lift-memory takes."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(v) for v in self.fn(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return list(self.fn([text])[0])
