"""Hybrid retrieval: dense (Chroma) + lexical (BM25) + exact phrases, fused by reciprocal rank.

Needles are exact facts — passkeys, numbers, names, identifiers — and dense embeddings blur exactly those.
So besides the dense and BM25 rankings, every quoted string, number and identifier in the query is looked up
verbatim (Chroma's ``$contains``); chunks that contain one form a third ranking, weighted up because a
verbatim match is strong evidence. Each hit keeps the score from every retriever that found it.

This module knows the store's query methods and the BM25 index; nothing about models or prompts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lift_memory.retrieval.bm25 import BM25Index, fingerprint
from lift_memory.retrieval.fusion import reciprocal_rank_fusion
from lift_memory.retrieval.store import ChromaStore
from lift_memory.types import Snippet

_QUOTED = re.compile(r"\"([^\"]{2,200})\"|“([^”]{2,200})”|'([^']{3,200})'")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,.:/-]*\d(?![\w])|(?<![\w.])\d{2,}(?![\w])")
# Identifiers: words with a digit or underscore inside, camelCase, or ALL-CAPS codes.
_IDENTIFIER = re.compile(r"\b(?:[A-Za-z]+[0-9_][A-Za-z0-9_-]*|[a-z]+[A-Z][A-Za-z0-9]*|[A-Z]{2,}[0-9A-Z_-]*)\b")
METHODS = ("dense", "bm25", "phrase")


def exact_phrases(query: str) -> list[str]:
    """Quoted strings, numbers and identifiers in ``query``, longest first; none that is part of another."""
    found = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(query)]
    found += _NUMBER.findall(query) + _IDENTIFIER.findall(query)
    unique = sorted(dict.fromkeys(p.strip() for p in found if len(p.strip()) >= 2), key=len, reverse=True)
    return [p for i, p in enumerate(unique) if not any(p in longer for longer in unique[:i])]


class HybridRetriever:
    """Retrieves snippets from a :class:`ChromaStore` with dense, BM25 and exact-phrase search.

    Args:
        store: the chunk store.
        candidates: how many hits each retriever contributes before fusion.
        phrase_weight: weight of the exact-phrase ranking in the fusion (dense and BM25 weigh 1).
    """

    def __init__(self, store: ChromaStore, *, candidates: int = 20, phrase_weight: float = 2.0) -> None:
        self.store = store
        self.candidates = candidates
        self.phrase_weight = phrase_weight
        self._bm25: dict[str, tuple[int, BM25Index]] = {}

    def bm25(self, namespace: str) -> BM25Index:
        """The BM25 index of ``namespace``: cached, loaded from disk, or rebuilt (and saved) if chunks changed."""
        version = self.store.version(namespace)
        cached = self._bm25.get(namespace)
        if cached is not None and cached[0] == version:
            return cached[1]
        chunks = self.store.chunks(namespace)
        ids = [c.chunk_id for c in chunks]
        folder = self._folder(namespace)
        index = BM25Index.load(folder, fingerprint(ids)) if folder else None
        if index is None:
            index = BM25Index(ids, [c.text for c in chunks])
            if folder:
                index.save(folder)
        self._bm25[namespace] = (version, index)
        return index

    def _folder(self, namespace: str) -> Path | None:
        return None if self.store.path is None else self.store.path / namespace / "bm25"

    def retrieve(
        self,
        query: str,
        namespace: str = "default",
        *,
        k: int = 5,
        doc_ids: Iterable[str] | None = None,
        methods: Iterable[str] = METHODS,
    ) -> list[Snippet]:
        """The ``k`` best snippets for ``query``; ``scores`` holds each retriever's score and the fused one."""
        methods = tuple(methods)
        unknown = set(methods) - set(METHODS)
        if unknown:
            from lift_memory.errors import ConfigError

            raise ConfigError(f"unknown retrieval methods {sorted(unknown)}; available: {list(METHODS)}")
        doc_ids = None if doc_ids is None else sorted(set(doc_ids))
        if doc_ids == [] or k <= 0:
            return []
        hits: dict[str, dict] = {}
        rankings: dict[str, list[str]] = {}
        n = max(k, self.candidates)
        if "dense" in methods:
            found = self.store.dense(namespace, query, n, doc_ids)
            rankings["dense"] = self._collect(found, "dense", hits)
        if "bm25" in methods:
            allowed = (
                None if doc_ids is None else {c.chunk_id for d in doc_ids for c in self.store.chunks(namespace, d)}
            )
            found = []
            for chunk_id, score in self.bm25(namespace).search(query, n, allowed):
                chunk = self.store.chunk(namespace, chunk_id)
                if chunk is not None:
                    found.append({**_chunk_hit(chunk), "score": score})
            rankings["bm25"] = self._collect(found, "bm25", hits)
        if "phrase" in methods:
            phrase_hits: list[dict] = []
            for phrase in exact_phrases(query):
                phrase_hits += self.store.containing(namespace, phrase, n, doc_ids)
            rankings["phrase"] = self._collect(phrase_hits, "phrase", hits)
        fused = reciprocal_rank_fusion(rankings, weights={"phrase": self.phrase_weight})
        return [_snippet(hits[chunk_id], score) for chunk_id, score in fused[:k]]

    @staticmethod
    def _collect(found: list[dict], method: str, hits: dict[str, dict]) -> list[str]:
        order = []
        for hit in found:
            entry = hits.setdefault(hit["chunk_id"], {**hit, "scores": {}})
            if method not in entry["scores"]:
                entry["scores"][method] = round(hit["score"], 6)
                order.append(hit["chunk_id"])
        return order


def _chunk_hit(chunk) -> dict:
    return {
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "text": chunk.text,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "index": chunk.index,
    }


def _snippet(hit: dict, fused: float) -> Snippet:
    return Snippet(
        doc_id=hit["doc_id"],
        text=hit["text"],
        char_start=hit["char_start"],
        char_end=hit["char_end"],
        chunk_id=hit["chunk_id"],
        score=round(fused, 6),
        scores={**hit["scores"], "rrf": round(fused, 6)},
    )
