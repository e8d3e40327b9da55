"""The router: decides how a question is answered, and says why.

Four routes, each a different use of the two memories:

==========  =================  =======================================================
route       adapter on model   in the prompt
==========  =================  =======================================================
``icl``     none               the document's head and tail (all of it when it fits)
``lift``    the document's     the document's head and tail (LIFT's test-time prompt)
``rag``     none               retrieved snippets
``hybrid``  the document's     retrieved snippets and the document's head and tail
==========  =================  =======================================================

``mode="auto"`` picks per question: a document that fits the window is read whole (``icl``); otherwise
``hybrid``, and the retrieval evidence decides its prompt — when one snippet stands out (a verbatim phrase
match or a distinctive BM25 hit) the prompt holds only it and any other close hit (:func:`focus`), no head
and tail, since a small model copies whatever filler sits nearest; weaker evidence splits the budget between
the snippets and the document's ends. With no adapter it answers by ``rag``; with no hits, by ``lift``.

The router knows only two protocols, :class:`Retriever` and :class:`Answerer`; nothing about models,
tokenizers or Chroma.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

from lift_memory.errors import ConfigError
from lift_memory.types import Answer, Snippet

Route = Literal["icl", "lift", "rag", "hybrid"]
"""How an answer is made: the four methods, compared side by side in the NIAH harness."""
ROUTES: tuple[str, ...] = get_args(Route)
Mode = Literal["auto", Route]
"""What a caller asks for: a route, or ``auto`` (the router picks one)."""
MODES: tuple[str, ...] = get_args(Mode)


class Retriever(Protocol):
    """Finds snippets for a question among the documents of a namespace."""

    def retrieve(self, query: str, doc_ids: Sequence[str] | None, k: int) -> list[Snippet]: ...


class Answerer(Protocol):
    """Answers with a model, given a plan; knows which documents have adapters and which fit the window."""

    def has_adapter(self, doc_id: str) -> bool: ...

    def fits_window(self, doc_id: str) -> bool: ...

    def self_check(self, doc_id: str) -> float | None: ...

    def answer(self, question: str, plan: Plan) -> Answer: ...

    def stream(self, question: str, plan: Plan) -> Iterator[str]: ...


@dataclass(frozen=True)
class Plan:
    """What the answerer does: which route, whose adapter, which document's ends, which snippets, and how
    the context budget is shared (``snippet_share`` of it for snippets, the rest for head and tail)."""

    route: str
    doc_id: str | None
    adapter: str | None
    snippets: tuple[Snippet, ...] = ()
    snippet_share: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    retrieve_seconds: float = 0.0

    @property
    def ends(self) -> bool:
        """Whether the prompt shows the document's head and tail: unless the snippets have the whole budget
        (``rag``, and ``hybrid`` when a snippet stands out)."""
        return self.snippet_share < 1.0


LOW_SELF_CHECK = 0.25
"""A recall self-check below this makes ``auto`` give the snippets the whole prompt (the adapter stays on)."""

DENSE_CLOSE = 0.5
"""Cosine similarity at which a snippet counts as semantically close to the question."""


def _standout(snippets: Sequence[Snippet]) -> str | None:
    """``"phrase"`` or ``"bm25"`` when the best snippet stands out (quotes the question verbatim, or scores
    at least 1.5x the next on BM25); None otherwise."""
    if "phrase" in snippets[0].scores:
        return "phrase"
    bm25 = [s.scores.get("bm25", 0.0) for s in snippets]
    if bm25[0] > 0 and (len(bm25) == 1 or bm25[0] >= 1.5 * max(bm25[1:])):
        return "bm25"
    return None


def evidence(snippets: Sequence[Snippet]) -> tuple[float, str]:
    """Share of the context budget the snippets earn, and why, from the retrievers' scores."""
    if not snippets:
        return 0.0, "no retrieval hits"
    standout = _standout(snippets)
    if standout == "phrase":
        return 0.8, "a snippet contains a phrase of the question verbatim"
    if standout == "bm25":
        return 0.65, "one snippet stands out lexically (BM25)"
    if snippets[0].scores.get("dense", 0.0) >= DENSE_CLOSE:
        return 0.5, "a snippet is semantically close (dense)"
    return 0.3, "weak retrieval evidence"


def focus(snippets: Sequence[Snippet]) -> list[Snippet]:
    """The snippets worth a place in the prompt. When the best one stands out, the rest of the top k are
    mostly filler that distracts the model (a small model copies whatever text sits nearest): keep the
    standout, any other verbatim match, and any snippet semantically close to the question. With no
    standout, keep them all."""
    if not snippets:
        return []
    standout = _standout(snippets)
    if standout is None:
        return list(snippets)
    return [
        s for i, s in enumerate(snippets) if i == 0 or "phrase" in s.scores or s.scores.get("dense", 0.0) >= DENSE_CLOSE
    ]


class Router:
    """Plans and answers questions over one document or a whole namespace.

    Args:
        retriever: snippet search (already bound to a namespace).
        answerer: the model side.
        k: snippets to retrieve.
    """

    def __init__(self, retriever: Retriever | None, answerer: Answerer, *, k: int = 5) -> None:
        self.retriever, self.answerer, self.k = retriever, answerer, k

    def plan(self, question: str, doc_id: str | None = None, mode: str = "auto") -> Plan:
        """Decide the route for ``question`` about ``doc_id`` (None: any document of the namespace)."""
        import time

        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
        snippets: list[Snippet] = []
        seconds = 0.0
        needs_retrieval = mode in ("auto", "rag", "hybrid") or doc_id is None
        if needs_retrieval and self.retriever is not None:
            started = time.perf_counter()
            snippets = self.retriever.retrieve(question, None if doc_id is None else [doc_id], self.k)
            seconds = time.perf_counter() - started
        if doc_id is None and snippets:
            doc_id = snippets[0].doc_id  # the best hit's document lends its adapter and its ends
        notes = [] if doc_id is None or snippets or not needs_retrieval else ["retrieval found nothing"]
        share, why = evidence(snippets)
        standout = bool(snippets) and _standout(snippets) is not None
        kept = focus(snippets)
        if len(kept) < len(snippets):
            why += f"; kept {len(kept)} of {len(snippets)} snippets"
        adapter = doc_id if doc_id is not None and self.answerer.has_adapter(doc_id) else None

        def make(route: str, *, use_adapter: bool, snippet_share: float, note: str) -> Plan:
            if route in ("icl", "lift") and doc_id is None:
                raise ConfigError(f"mode {route!r} needs a document: pass doc_id (retrieval found none)")
            if route == "lift" and adapter is None:
                raise ConfigError(
                    f"{doc_id!r} has no adapter (it fits the window or was stored with train=False); "
                    "use mode='icl', 'rag' or 'auto'"
                )
            return Plan(
                route=route,
                doc_id=doc_id,
                adapter=adapter if use_adapter else None,
                snippets=tuple(kept) if snippet_share > 0 else (),
                snippet_share=snippet_share,
                notes=(*notes, note),
                retrieve_seconds=seconds,
            )

        if mode == "icl":
            return make("icl", use_adapter=False, snippet_share=0.0, note="mode icl: base model reads the document")
        if mode == "lift":
            return make("lift", use_adapter=True, snippet_share=0.0, note="mode lift: adapter and document ends")
        if mode == "rag":
            return make("rag", use_adapter=False, snippet_share=1.0, note=f"mode rag: snippets only ({why})")
        if mode == "hybrid":
            if standout:
                note = f"mode hybrid: snippets only, no head and tail ({why})"
                return make("hybrid", use_adapter=True, snippet_share=1.0, note=note)
            share = max(share, 0.5) if snippets else 0.0
            note = f"mode hybrid: {share:.0%} of the context for snippets ({why})"
            return make("hybrid", use_adapter=True, snippet_share=share, note=note)
        # auto
        if (
            doc_id is not None
            and self.answerer.fits_window(doc_id)
            and (snippets == [] or snippets[0].doc_id == doc_id)
        ):
            return make(
                "icl", use_adapter=False, snippet_share=0.0, note="auto: the document fits the window, read whole"
            )
        if adapter is None:
            if not snippets:
                return make("icl", use_adapter=False, snippet_share=0.0, note="auto: no adapter and no hits, read ends")
            return make("rag", use_adapter=False, snippet_share=1.0, note=f"auto: no adapter, snippets only ({why})")
        if not snippets:
            return make("lift", use_adapter=True, snippet_share=0.0, note="auto: no hits, adapter and document ends")
        if standout:
            note = f"auto: snippets only, no head and tail ({why})"
            return make("hybrid", use_adapter=True, snippet_share=1.0, note=note)
        checked = self.answerer.self_check(adapter)
        if checked is not None and checked < LOW_SELF_CHECK:
            note = f"auto: snippets only, the adapter's recall self-check scored {checked:.2f} ({why})"
            return make("hybrid", use_adapter=True, snippet_share=1.0, note=note)
        return make("hybrid", use_adapter=True, snippet_share=share, note=f"auto: {share:.0%} for snippets ({why})")

    def ask(self, question: str, doc_id: str | None = None, mode: str = "auto") -> Answer:
        """Plan, then answer."""
        return self.answerer.answer(question, self.plan(question, doc_id, mode))

    def stream(self, question: str, doc_id: str | None = None, mode: str = "auto") -> Iterator[str]:
        """Plan, then stream the answer's text."""
        return self.answerer.stream(question, self.plan(question, doc_id, mode))
