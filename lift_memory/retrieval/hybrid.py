"""Hybrid retrieval: dense (Chroma) + lexical (BM25) + exact phrases, fused by reciprocal rank.

Needles are exact facts — passkeys, numbers, names, identifiers — and dense embeddings blur exactly those.
So besides the dense and BM25 rankings, every quoted string, number and identifier in the query is looked up
verbatim (Chroma's ``$contains``); chunks that contain one form a third ranking, weighted up because a
verbatim match is strong evidence. Each hit keeps the score from every retriever that found it.

This module knows the store's query methods and the BM25 index; nothing about models or prompts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from lift_memory import spans
from lift_memory.errors import ConfigError
from lift_memory.retrieval.bm25 import BM25Index, fingerprint
from lift_memory.retrieval.bm25 import tokenize as bm25_tokens
from lift_memory.retrieval.fusion import reciprocal_rank_fusion
from lift_memory.retrieval.store import ChromaStore
from lift_memory.types import Snippet

METHODS = ("dense", "bm25", "phrase")


def exact_phrases(query: str) -> list[str]:
    """Quoted strings, numbers and identifiers in ``query``, longest first; none that is part of another."""
    found = [
        spans.span(m) for pattern in (spans.QUOTED, spans.NUMBER, spans.IDENTIFIER) for m in pattern.finditer(query)
    ]
    unique = sorted(dict.fromkeys(p.strip() for p in found if len(p.strip()) >= 2), key=len, reverse=True)
    return [p for i, p in enumerate(unique) if not any(p in longer for longer in unique[:i])]


class HybridRetriever:
    """Retrieves snippets from a :class:`ChromaStore` with dense, BM25 and exact-phrase search.

    Args:
        store: the chunk store.
        candidates: how many hits each retriever contributes before fusion.
        phrase_weight: weight of the exact-phrase ranking in the fusion (dense and BM25 weigh 1).
        phrase_candidates: chunks (best BM25 matches of a phrase's words) checked for the verbatim phrase.
    """

    def __init__(
        self, store: ChromaStore, *, candidates: int = 20, phrase_weight: float = 2.0, phrase_candidates: int = 500
    ) -> None:
        self.store = store
        self.candidates = candidates
        self.phrase_weight = phrase_weight
        self.phrase_candidates = phrase_candidates
        self.max_phrases = 4
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
        if index is None:  # missing, stale or damaged: it is derived from the chunks, so build it again
            index = BM25Index(ids, [c.text for c in chunks])
            if folder and not self.store.read_only:
                # A full disk, or another process saving at once, costs the saved copy, not the search.
                with contextlib.suppress(OSError):
                    index.save(folder)
        self._bm25[namespace] = (version, index)
        return index

    def _folder(self, namespace: str) -> Path | None:
        folder = self.store.namespace_dir(namespace)
        return None if folder is None else folder / "bm25"

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
        allowed = None if doc_ids is None else {c.chunk_id for d in doc_ids for c in self.store.chunks(namespace, d)}
        if "bm25" in methods:
            found = []
            for chunk_id, score in self.bm25(namespace).search(query, n, allowed):
                chunk = self.store.chunk(namespace, chunk_id)
                if chunk is not None:
                    found.append({**_chunk_hit(chunk), "score": score})
            rankings["bm25"] = self._collect(found, "bm25", hits)
        if "phrase" in methods and (phrases := exact_phrases(query)[: self.max_phrases]):
            rankings["phrase"] = self._collect(
                self._phrase_hits(namespace, phrases, n, doc_ids, allowed), "phrase", hits
            )
        fused = reciprocal_rank_fusion(rankings, weights={"phrase": self.phrase_weight})
        return [_snippet(hits[chunk_id], score) for chunk_id, score in fused[:k]]

    def _phrase_hits(self, namespace, phrases, n, doc_ids, allowed) -> list[dict]:
        """Chunks holding a phrase verbatim, those with the most phrases first.

        A chunk that holds a phrase holds its words, so the phrase's best BM25 matches are the candidates, and
        each is checked verbatim against its stored text — microseconds, where Chroma's ``$contains`` scans every
        document (~40 ms at 100k chunks). Phrases BM25 cannot index (no word of two or more characters that is
        not a stopword) go to Chroma's ``$contains``.
        """
        found: dict[str, dict] = {}
        unindexable = [p for p in phrases if not _tokens(p)]
        for phrase in phrases:
            if phrase in unindexable:
                continue
            for chunk_id, _ in self.bm25(namespace).search(phrase, self.phrase_candidates, allowed):
                chunk = self.store.chunk(namespace, chunk_id)
                if chunk is not None and phrase in chunk.text:
                    found.setdefault(chunk_id, {**_chunk_hit(chunk), "score": 1.0})
        for hit in self.store.containing(namespace, unindexable, n, doc_ids):
            found.setdefault(hit["chunk_id"], hit)
        ordered = sorted(found.values(), key=lambda h: (h["doc_id"], h["char_start"]))
        return sorted(ordered, key=lambda h: -sum(p in h["text"] for p in phrases))[:n]

    @staticmethod
    def _collect(found: list[dict], method: str, hits: dict[str, dict]) -> list[str]:
        order = []
        for hit in found:
            entry = hits.setdefault(hit["chunk_id"], {**hit, "scores": {}})
            if method not in entry["scores"]:
                entry["scores"][method] = round(hit["score"], 6)
                order.append(hit["chunk_id"])
        return order


def _tokens(text: str) -> list[str]:
    return bm25_tokens([text])[0]


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
