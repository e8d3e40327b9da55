"""Lexical retrieval: a BM25 index over chunk texts (bm25s), persisted as numpy arrays and JSON.

Chroma's local and single-node modes have no sparse search, so the index lives beside the store and is
rebuilt from the chunks whenever they change (bm25s indexes ~100k chunks in seconds). Persisted indexes are
tagged with a fingerprint of the chunk ids they were built from and ignored when it no longer matches.
Loading never unpickles (``allow_pickle=False``).

This module knows chunk ids and texts; nothing about embeddings or Chroma.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from lift_memory.files import storage_errors


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


def fingerprint(ids: Sequence[str]) -> str:
    """A hash of the chunk ids an index covers, in order."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class BM25Index:
    """BM25 over a fixed list of chunks; ``search`` returns (chunk id, score) best first, scores > 0 only."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], *, _retriever=None) -> None:
        import bm25s

        self.ids = list(ids)
        self.fingerprint = fingerprint(self.ids)
        self._position = {chunk_id: i for i, chunk_id in enumerate(self.ids)}
        if _retriever is None and self.ids:
            _retriever = bm25s.BM25()
            _retriever.index(tokenize(texts), show_progress=False)
        self._retriever = _retriever

    def search(self, query: str, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best chunks for ``query``, restricted to ``allowed`` ids when given."""
        import numpy as np

        tokens = tokenize([query])
        if not self.ids or not tokens[0] or k <= 0:
            return []
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self.ids), dtype=np.float32)
            mask[[self._position[i] for i in allowed if i in self._position]] = 1.0
        docs, scores = self._retriever.retrieve(
            tokens, k=min(k, len(self.ids)), show_progress=False, weight_mask=mask, n_threads=1
        )
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def save(self, path: Path) -> None:
        """Write the index to ``path``, replacing what was there. It is built in a folder of its own and swapped
        in, so a failed write leaves no partial index and processes saving at once do not collide; the last
        swap wins (:class:`~lift_memory.errors.StorageError` for a full disk or a read-only folder)."""
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:12]}")
        aside = path.with_name(f"{path.name}.old-{uuid.uuid4().hex[:12]}")
        with storage_errors(f"the BM25 index {path}"):
            try:
                tmp.mkdir(parents=True)
                if self._retriever is not None:
                    self._retriever.save(str(tmp))
                (tmp / "ids.json").write_text(json.dumps({"fingerprint": self.fingerprint, "ids": self.ids}))
                with contextlib.suppress(FileNotFoundError):  # another process may have moved it already
                    os.replace(path, aside)
                os.replace(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(aside, ignore_errors=True)

    @classmethod
    def load(cls, path: Path, expected: str) -> BM25Index | None:
        """The index at ``path`` if it was built from chunks with fingerprint ``expected``; None when it is
        missing, stale, truncated or not a BM25 index at all (the caller rebuilds it from the chunks)."""
        import bm25s

        try:
            meta = json.loads((path / "ids.json").read_text())
            if meta.get("fingerprint") != expected or fingerprint(meta["ids"]) != expected:
                return None
            retriever = bm25s.BM25.load(str(path), allow_pickle=False) if meta["ids"] else None
            index = cls(meta["ids"], [], _retriever=retriever)
            if retriever is not None:
                index.search("the index answers", 1)  # a damaged matrix fails here, not in a user's search
            return index
        except Exception:  # bm25s and numpy raise many types for a damaged file; it is derived data
            return None
