"""``LiftRetriever``: lift-memory's hybrid retrieval as a LangChain retriever."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from langchain_lift._memory import MemoryFields


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
    """Documents to return (``invoke(query, k=...)`` overrides it per call)."""
    namespace: str | None = None
    """Retrieval namespace (default: the memory's)."""
    doc_ids: list[str] | None = None
    """Only search these documents (default: all in the namespace)."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = self.lift.retrieve(
            query, kwargs.get("doc_ids", self.doc_ids), namespace=self.namespace, k=kwargs.get("k", self.k)
        )
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
