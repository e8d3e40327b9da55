"""``LiftRetriever``: lift-memory's hybrid retrieval as a LangChain retriever."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator

from langchain_lift._memory import MemoryFields

_SEARCH_KWARGS = {"k", "namespace", "doc_ids", "score_threshold"}


class LiftRetriever(MemoryFields, BaseRetriever):
    """Hybrid retrieval (dense + BM25 + exact phrases, fused by reciprocal rank) over memorized documents.

    Example:
        ```python
        from langchain_lift import LiftRetriever

        retriever = LiftRetriever(memory=memory, k=3)
        for doc in retriever.invoke("What is the passkey?"):
            print(doc.metadata["doc_id"], doc.metadata["char_start"], doc.page_content)
        ```

    Each ``Document`` carries its provenance in ``metadata``: ``doc_id``, ``chunk_id``, ``char_start`` and
    ``char_end`` (offsets of ``page_content`` in the stored document), the fused ``score`` and the
    ``scores`` of each retriever that found it.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True)

    k: int = Field(default=4, ge=1)
    """Documents to return."""
    namespace: str | None = None
    """Retrieval namespace (default: the memory's)."""
    doc_ids: list[str] | None = None
    """Only search these documents (default: all in the namespace)."""
    score_threshold: float | None = Field(default=None, ge=0)
    """Drop hits whose fused score is below this. Scores are reciprocal-rank fusions: about 1/60 per retriever
    that ranks a hit first, so 0.03 keeps hits that two retrievers rank near the top."""
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Overrides of ``k``, ``namespace``, ``doc_ids`` and ``score_threshold``, as in LangChain's vector-store
    retrievers (``search_kwargs={"k": 2}``); ``invoke(query, k=...)`` overrides both per call."""

    @field_validator("search_kwargs")
    @classmethod
    def _known_search_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - _SEARCH_KWARGS)
        if unknown:
            raise ValueError(f"unknown search_kwargs {unknown}; known: {sorted(_SEARCH_KWARGS)}")
        return value

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        fields = {name: getattr(self, name) for name in _SEARCH_KWARGS}
        search = {**fields, **self._known_search_kwargs(self.search_kwargs), **self._known_search_kwargs(kwargs)}
        hits = self.lift.retrieve(query, search["doc_ids"], namespace=search["namespace"], k=search["k"])
        threshold = search["score_threshold"]
        hits = [hit for hit in hits if threshold is None or hit.score >= threshold]
        return [
            Document(
                id=hit.chunk_id,
                page_content=hit.text,
                metadata={
                    "doc_id": hit.doc_id,
                    "chunk_id": hit.chunk_id,
                    "char_start": hit.char_start,
                    "char_end": hit.char_end,
                    "score": hit.score,
                    "scores": hit.scores,
                },
            )
            for hit in hits
        ]
