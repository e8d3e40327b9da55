"""``LiftMemory``: the facade that wires the parts into memorize / ask. It owns no algorithm.

- :class:`~lift_memory.memorizer.Memorizer`: memorize and forget, as transactions (the write side);
  :class:`~lift_memory.background.Background`: the same, trained by a background job.
- :class:`~lift_memory.retrieval.factory.Retrieval`: the embedder, store and retriever, and hits filtered
  against the bank.
- :class:`~lift_memory.router.Router` plans an answer (retrieving when it helps);
  :class:`~lift_memory.engine.Engine` answers.

The base model loads lazily (listing or forgetting memories never loads it), and so does the retrieval store.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lift_memory.background import Background
from lift_memory.bank import AdapterBank
from lift_memory.config import MemoryConfig
from lift_memory.engine import LazyEngine
from lift_memory.errors import ConfigError, DamagedMemoryError
from lift_memory.ids import document_hash, document_text, nonempty, validate_id
from lift_memory.jobs import Job
from lift_memory.memorizer import Memorizer
from lift_memory.retrieval.factory import Retrieval
from lift_memory.types import Answer, MemoryRecord, Snippet


class LiftMemory:
    """Memorize long documents into a model's parameters and answer questions from them.

    Example::

        from lift_memory import LiftMemory

        memory = LiftMemory()                       # builtin:tiny, memories under the user data dir
        record = memory.memorize(open("report.txt").read(), title="Q3 report")
        print(memory.ask("What was the revenue?", record.doc_id).text)

    Args:
        config: everything configurable; defaults suit ``builtin:tiny`` on a CPU.
        root: memory directory, overriding ``config.root``.
        model: base model name, overriding ``config.model.name``.
        embedder: an object with ``embed_documents``/``embed_query`` (e.g. a LangChain ``Embeddings``) to use
            instead of ``config.retrieval.embedder``.
        generator: a task writer (e.g. :class:`~lift_memory.tasks.llm.ChatModelGenerator` around any LangChain
            chat model) instead of ``config.tasks.generator``.
        progress: show progress bars for model building and training.
    """

    def __init__(
        self,
        config: MemoryConfig | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
        model: str | None = None,
        embedder: Any = None,
        generator: Any = None,
        progress: bool = True,
    ) -> None:
        from lift_memory import settings

        config = config or MemoryConfig()
        if model is not None:
            config = config.model_copy(update={"model": config.model.model_copy(update={"name": model})})
        self.root = Path(root if root is not None else config.root or settings.default_root()).expanduser()
        self.config = settings.reconcile(config, settings.load(self.root), self.root)  # the folder remembers
        self.bank = AdapterBank(self.root, lock_timeout=config.lock_timeout)
        self.progress = progress
        self._engine = LazyEngine(self.config, self.bank, progress=progress)
        engine = self._engine  # the parts hold the loader, never the facade: dropping a memory frees it at once
        self.retrieval = Retrieval(self.root, self.config.retrieval, self.bank, lambda: engine().tokenizer, embedder)
        self.memorizer = Memorizer(
            self.root, self.config, self.bank, self.retrieval, self._engine, threading.RLock(), generator
        )
        self.background = Background(self.root, self.memorizer)
        self.detached = False  # set by `memorize --background`'s own process: it releases the index to train

    @property
    def engine(self):
        """The model side (:class:`~lift_memory.engine.Engine`), loaded on first use."""
        return self._engine()

    def synthesize(self, text: str | bytes):
        """Start writing ``text``'s training tasks in the background; returns the
        :class:`~lift_memory.tasks.pipeline.TaskStream` (``.wait()`` for the statistics), or None without a
        generator. Finished tasks are cached, so a later ``memorize`` of the same text trains on them at once.
        """
        return self.memorizer.task_stream(text := document_text(text), document_hash(text))

    # -- memorize ----------------------------------------------------------------------------------------

    def memorize(
        self,
        text: str | bytes,
        doc_id: str | None = None,
        title: str | None = None,
        *,
        replace: bool = False,
        train: bool | None = None,
        index: bool | None = None,
        namespace: str | None = None,
        callbacks: Sequence[Any] = (),
        background: bool = False,
    ) -> MemoryRecord:
        """Fine-tune an adapter on ``text``, index it for retrieval, and store both; return the record.

        Memorizing identical text with the same model and settings again is a no-op that returns the stored
        record. Under an id that already holds a different text, pass ``replace=True``.

        Args:
            text: the document (``str``, or UTF-8 ``bytes``).
            doc_id: a safe name to store it under; default ``doc-<content hash>``.
            title: a human-readable title kept in the record.
            replace: allow replacing a different document stored under ``doc_id``.
            train: fine-tune an adapter. None: only if the document does not fit the model's window (one that
                fits is read in context, exactly; the record says so).
            index: add the document's chunks to the retrieval store (None: ``config.retrieval.enabled``).
            namespace: retrieval namespace (default ``config.retrieval.namespace``).
            callbacks: trainer callbacks, each called with a ``StepInfo`` after every step.
            background: store and index the document, return at once, and train its adapter in the process's
                training worker (:mod:`lift_memory.jobs`). Until the adapter is ready, ``ask`` answers without
                it and says so; :meth:`job` tells the state, :meth:`wait` waits, :meth:`cancel` stops it. A
                document that fits the window needs no training and is stored at once, as without it.

        Raises:
            InvalidDocumentError: empty, whitespace-only or binary input.
            InvalidIdError: ``doc_id`` or ``namespace`` is not a safe name.
            DocumentExistsError: ``doc_id`` holds another text, or a damaged record, and ``replace`` is False.
            DocumentBusyError: another process kept writing ``doc_id`` for longer than ``config.lock_timeout``.
            StorageError: the memory root cannot be written (permissions, read-only, a full disk).
            StoreError: the retrieval store failed.

        Whatever fails, nothing stored before changes: the write is a transaction (docs/reliability.md).
        """
        w = self.memorizer.request(
            text, doc_id, title, replace=replace, train=train, index=index, namespace=namespace, callbacks=callbacks
        )
        self.memorizer.recover()
        self.background.cancel(w.doc_id)  # this write supersedes a job still training the document
        return self.background.submit(w, release_index=self.detached) if background else self.memorizer.write(w)

    async def amemorize(self, text: str | bytes, doc_id: str | None = None, title: str | None = None, **kwargs: Any):
        """:meth:`memorize` in a thread, for event loops (with ``background=True`` it returns once stored)."""
        import asyncio

        return await asyncio.to_thread(self.memorize, text, doc_id, title, **kwargs)

    # -- background jobs ---------------------------------------------------------------------------------

    def job(self, doc_id: str) -> Job | None:
        """``doc_id``'s last background job (None: it never had one). One left active by a process that ended
        reads as failed, unless that process stored the adapter before it died (then it reads as ready)."""
        return self.background.job(validate_id(doc_id))

    def jobs(self) -> list[Job]:
        """Every document's last background job, by id."""
        return self.background.jobs()

    def wait(self, doc_id: str | None = None, timeout: float | None = None) -> bool:
        """Wait until ``doc_id``'s background job (None: every job of this process) has ended; False on timeout."""
        return self.background.wait(None if doc_id is None else validate_id(doc_id), timeout)

    def cancel(self, doc_id: str, timeout: float | None = None) -> Job | None:
        """Stop ``doc_id``'s background job, in this process or another one (within a training step), and return
        its state once stopped (or at ``timeout``); the document stays stored and indexed, without an adapter."""
        return self.background.cancelled(validate_id(doc_id), timeout)

    # -- ask ---------------------------------------------------------------------------------------------

    def router(self, namespace: str | None = None, k: int | None = None):
        """The :class:`~lift_memory.router.Router` over ``namespace`` (retrieval off: it plans without)."""
        from lift_memory.router import Router

        r = self.config.retrieval
        retriever = self.retrieval.bound(validate_id(namespace or r.namespace, "namespace")) if r.enabled else None
        return Router(retriever, self.engine, k=k or r.k)

    def _plan(self, question: str, doc_id: str | None, mode: str, namespace: str | None, k: int | None):
        self.memorizer.recover()
        nonempty("question", question)
        k = self.config.retrieval.updated(k=k).k
        if doc_id is not None:
            self.bank.manifest(doc_id)  # unknown, unsafe or damaged ids fail here, before any model is loaded
            job = self.job(doc_id)
            if mode == "lift" and job is not None and job.active:
                raise ConfigError(f"{doc_id!r} has no adapter yet, it is {job.describe()}; use mode='auto' or 'rag'")
        plan = self.router(namespace, k).plan(question, doc_id, mode)
        job = None if plan.doc_id is None else self.job(plan.doc_id)
        if job is not None and job.active and (plan.adapter is None or self.bank.manifest(plan.doc_id).stale):
            note = (
                f"{plan.doc_id!r}'s adapter is not ready ({job.describe()}): answered without it"
                if plan.adapter is None
                else f"answered with the adapter of an earlier version of {plan.doc_id!r}; this one's is {job.describe()}"
            )
            plan = dataclasses.replace(plan, notes=(*plan.notes, note))
        return plan

    def ask(
        self,
        question: str,
        doc_id: str | None = None,
        *,
        mode: str = "auto",
        namespace: str | None = None,
        k: int | None = None,
        history: Sequence[tuple[str, str]] | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        max_seconds: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> Answer:
        """Answer ``question`` from memory; the :class:`Answer` says which route, adapter and snippets it used.

        Args:
            question: the question (or, for base and tiny models, a prefix to continue).
            doc_id: the document to answer from; None: any document of the namespace (retrieval decides).
            mode: ``auto`` (the router decides), ``lift``, ``rag``, ``hybrid`` or ``icl``; see
                :mod:`lift_memory.router`.
            namespace: retrieval namespace (default ``config.retrieval.namespace``).
            k: snippets to retrieve (default ``config.retrieval.k``).
            history: the conversation's earlier turns, ``(role, text)`` pairs with roles ``system``, ``user``
                and ``assistant``, rendered through the model's chat template before the question (turns that
                do not fit the window are dropped, oldest first; system turns stay).
            max_new_tokens: generation budget (default ``config.generation.max_new_tokens``).
            temperature: 0 decodes greedily (default ``config.generation.temperature``).
            max_seconds: stop decoding after this many seconds.
            stop: strings that end the answer (not included in it).

        Raises:
            UnknownDocumentError: nothing is stored under ``doc_id``.
            AdapterMismatchError: the stored adapter belongs to another base model, tokenizer or adapter layout.
            ConfigError: an unknown mode, one that needs what the document lacks (``lift`` without adapter), or
                an argument out of range.
        """
        stream = self.stream(
            question, doc_id, mode=mode, namespace=namespace, k=k, history=history,
            max_new_tokens=max_new_tokens, temperature=temperature, max_seconds=max_seconds, stop=stop,
        )  # fmt: skip
        for _ in stream:
            pass
        return stream.answer

    def stream(
        self,
        question: str,
        doc_id: str | None = None,
        *,
        mode: str = "auto",
        namespace: str | None = None,
        k: int | None = None,
        history: Sequence[tuple[str, str]] | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        max_seconds: float | None = None,
        stop: Sequence[str] | None = None,
    ):
        """Like :meth:`ask`, but returns an iterable of the answer's text pieces as they are generated.

        Iterating yields ``str`` pieces (together: the same text as :meth:`ask`); afterwards the stream's
        ``answer`` attribute holds the full :class:`Answer`, also when a stop string ended it::

            stream = memory.stream("What is the passkey?", "doc")
            for piece in stream:
                print(piece, end="")
            print(stream.answer.route, stream.answer.snippets)
        """
        generation = {"max_new_tokens": max_new_tokens, "temperature": temperature, "max_seconds": max_seconds}
        generation["stop"] = None if stop is None else tuple(stop)
        self.config.generation.updated(**generation)  # checked before anything loads
        from lift_memory.prompt import check_history

        turns = check_history(history)
        plan = self._plan(question, doc_id, mode, namespace, k)
        return self.engine.stream(question, plan, turns, **generation)

    def complete(self, prompt: str, doc_id: str | None = None, *, max_new_tokens: int | None = None) -> str:
        """Continue ``prompt`` as it is, with ``doc_id``'s adapter (None: the base model); no context added.

        This is the bare-prompt probe of parametric memory: what the adapted model recalls by itself.
        """
        return self.engine.complete(prompt, doc_id, max_new_tokens)

    def perplexity(self, text: str, doc_id: str | None = None, *, stride: int | None = None) -> float:
        """Perplexity of ``text`` under the model with ``doc_id``'s adapter (None: the base model).

        Long texts are scored in windows of the model's context that advance by ``stride`` tokens (default:
        half a window), each token scored once with the most context a window gives it.
        """
        return self.engine.perplexity(text, doc_id, stride)

    # -- retrieval ---------------------------------------------------------------------------------------

    @property
    def retriever(self):
        """The hybrid retriever over this memory's Chroma store (opened on first use)."""
        return self.retrieval.retriever

    def close(self) -> None:
        """Release the retrieval index (and with it the index directory, which another process may then open).
        The memory stays usable: the index opens again on next use. Also ``with LiftMemory(...) as memory:``."""
        self.retrieval.close()

    def __enter__(self) -> LiftMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def retrieve(
        self,
        query: str,
        doc_ids: Sequence[str] | None = None,
        *,
        namespace: str | None = None,
        k: int | None = None,
    ) -> list[Snippet]:
        """Hybrid search (dense + BM25 + exact phrases) over the indexed documents of ``namespace``.

        Args:
            query: what to look for.
            doc_ids: only these documents (default: all in the namespace).
            namespace: default ``config.retrieval.namespace``.
            k: how many snippets (default ``config.retrieval.k``).
        """
        self.memorizer.recover()
        r = self.config.retrieval
        namespace = validate_id(namespace or r.namespace, "namespace")
        k = r.updated(k=k).k
        nonempty("query", query)
        doc_ids = None if doc_ids is None else [validate_id(d) for d in doc_ids]
        return self.retrieval.retrieve(query, namespace, k, doc_ids)

    def rebuild_index(self) -> dict[str, int]:
        """Re-create the whole retrieval index (Chroma, chunk logs, BM25) from the stored documents, after
        damage or an interrupted write; returns chunks per namespace. Damaged memories are skipped (see
        :meth:`damaged`)."""
        return self.memorizer.rebuild_index()

    # -- the bank ----------------------------------------------------------------------------------------

    def export(self, doc_id: str, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write ``doc_id``'s LoRA adapter as a standard PEFT folder (``adapter_config.json`` and
        ``adapter_model.safetensors``) that ``PeftModel.from_pretrained`` and vLLM's multi-LoRA serving load;
        returns the folder. The folder appears whole or not at all.

        Raises:
            ConfigError: the document has no adapter (it was read in context), its adapter is Gated Memory (which
                stays in lift-memory's own format), or ``folder`` exists and ``overwrite`` is False.
        """
        from lift_memory.files import write_folder

        self.memorizer.recover()
        if self.bank.manifest(doc_id).adapter is None:
            raise ConfigError(f"{doc_id!r} was stored without an adapter (read in context): there is nothing to export")
        return write_folder(Path(folder).expanduser(), lambda tmp: self.engine.export(doc_id, tmp), overwrite=overwrite)

    def get(self, doc_id: str) -> MemoryRecord:
        """The stored record of ``doc_id``."""
        self.memorizer.recover()
        return self.bank.manifest(doc_id).record()

    def list(self) -> list[MemoryRecord]:
        """Records of all stored documents, by id; damaged ones are left out (see :meth:`damaged`)."""
        self.memorizer.recover()
        records = []
        for doc_id in self.bank.ids():
            try:
                records.append(self.get(doc_id))
            except DamagedMemoryError:
                continue
        return records

    def damaged(self) -> dict[str, str]:
        """Damaged memories, each with what is wrong: ``forget`` or ``memorize(replace=True)`` repairs them."""
        found = {}
        for doc_id in self.bank.ids():
            try:
                self.bank.manifest(doc_id)
            except DamagedMemoryError as exc:
                found[doc_id] = str(exc)
        return found

    def forget(self, doc_id: str) -> None:
        """Delete ``doc_id``'s document, adapter, manifest and retrieval chunks (a damaged memory included).

        All or nothing: if the store fails, or the process dies, the memory stays as it was.
        """
        if not self.bank.exists(doc_id):
            self.bank.manifest(doc_id)  # raises UnknownDocumentError, listing what is stored
        self.memorizer.recover()
        self.background.cancel(doc_id)
        self.memorizer.forget(doc_id)
        self.background.book.remove(doc_id)
