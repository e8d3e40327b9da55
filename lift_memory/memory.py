"""``LiftMemory``: the facade that wires the parts into memorize / ask.

It owns no algorithm. Memorize: validate everything -> take the document's lock -> open the retrieval store
-> the engine trains the adapter slot -> the bank stores text, adapter and manifest -> the retrieval store
indexes the chunks; if a step fails, the bank's transaction puts the earlier memory back. Ask: the router plans
(retrieving when it helps) -> the engine answers. The trainer and the bank never meet: this module hands the
trained tensors from one to the other.

The bank is the source of truth. A retrieval hit counts only if the document's manifest says it is indexed in
that namespace and the chunk log holds the chunks of that very text, so chunks a killed process left behind
are never shown, and ``rebuild_index`` re-creates the whole index from the stored documents.

The base model loads lazily (listing or forgetting memories never loads it), and so does the retrieval store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lift_memory.bank import AdapterBank
from lift_memory.config import MemoryConfig
from lift_memory.errors import (
    ConfigError,
    DamagedMemoryError,
    DocumentExistsError,
    LiftMemoryError,
    UnknownDocumentError,
    first_line,
)
from lift_memory.ids import default_doc_id, document_hash, document_text, validate_id
from lift_memory.jobs import WORKER, Cancelled, Job, JobBook, now, training_turn
from lift_memory.types import Answer, MemoryRecord, SelfCheck, Snippet, TrainStats, Usage


def default_root() -> Path:
    """``$LIFT_MEMORY_HOME``, else the user data folder (platformdirs: ``~/.local/share/lift-memory`` on Linux,
    following ``$XDG_DATA_HOME``)."""
    if env := os.environ.get("LIFT_MEMORY_HOME"):
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("lift-memory", appauthor=False)


class _BoundRetriever:
    """The hybrid retriever bound to one namespace: the router's ``Retriever`` protocol."""

    def __init__(self, memory: LiftMemory, namespace: str) -> None:
        self.memory, self.namespace = memory, namespace

    def retrieve(self, query: str, doc_ids: Sequence[str] | None, k: int) -> list[Snippet]:
        return self.memory.retrieve(query, doc_ids, namespace=self.namespace, k=k)


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
        self.root = Path(root if root is not None else config.root or default_root()).expanduser()
        self.config = settings.reconcile(config, settings.load(self.root), self.root)  # the folder remembers
        self.bank = AdapterBank(self.root, lock_timeout=config.lock_timeout)
        self.progress = progress
        self._engine = None
        self._embedder = embedder
        self._generator = generator
        self._retriever = None
        self._trainer = None  # the background jobs' own engine (a second copy of the base model)
        self.detached = False  # set by `memorize --background`'s own process: it releases the index to train
        self._jobs = JobBook(self.root)
        self._lock = threading.RLock()
        self._recovered = False
        self._index_checked: dict[str, int] = {}  # namespace -> chunk version last found complete

    @property
    def engine(self):
        """The model side (:class:`~lift_memory.engine.Engine`), loaded on first use."""
        with self._lock:
            if self._engine is None:
                from lift_memory.engine import Engine

                self._engine = Engine(self.config, self.bank, progress=self.progress)
            return self._engine

    def generator(self):
        """The task generator memorize uses (None: segments and sentence windows only)."""
        if self._generator is None and self.config.tasks.generator == "extractive":
            from lift_memory.tasks.extractive import ExtractiveGenerator

            self._generator = ExtractiveGenerator(seed=self.config.train.seed)
        return self._generator

    def _settings(self, train: bool) -> dict[str, Any]:
        """What, besides the text and the base model, determines a stored memory."""
        c = self.config
        generator = self.generator()
        return {
            "segment": c.segment.model_dump(mode="json"),
            "train": self.engine.train_config.model_dump(mode="json"),
            "adapter": c.adapter.model_dump(mode="json"),
            "tasks": c.tasks.model_dump(mode="json"),
            "generator": None if generator is None else f"{generator.identity}|{generator.prompt_version}",
            "start": None if self.engine.slot.start is None else self.engine.slot.start["id"],
            "train_adapter": train,
        }

    def synthesize(self, text: str | bytes):
        """Start writing ``text``'s training tasks in the background; returns the
        :class:`~lift_memory.tasks.pipeline.TaskStream` (``.wait()`` for the statistics), or None without a
        generator. Finished tasks are cached, so a later ``memorize`` of the same text trains on them at once.
        """
        text = document_text(text)
        return self._task_stream(text, document_hash(text))

    def _task_stream(self, text: str, digest: str):
        from lift_memory.tasks.pipeline import TaskStream

        generator = self.generator()
        if generator is None:
            return None
        t = self.config.tasks
        return TaskStream(
            generator,
            text,
            digest,
            cache_dir=self.root / "tasks" if t.cache else None,
            concurrency=t.concurrency,
            max_attempts=t.max_attempts,
            timeout=t.timeout,
        ).start()

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
        text = document_text(text)
        digest = document_hash(text)
        doc_id = validate_id(doc_id) if doc_id is not None else default_doc_id(text)
        namespace = validate_id(namespace or self.config.retrieval.namespace, "namespace")
        if title is not None and not isinstance(title, str):
            raise ConfigError(f"title must be a string, got {type(title).__name__}")
        index = self.config.retrieval.enabled if index is None else bool(index)
        self._recover()
        self._cancel_job(doc_id)  # this write supersedes a job still training the document
        if background:
            return self._memorize_in_background(
                text, digest, doc_id, title, replace, train, index, namespace, callbacks
            )
        return self._memorize(text, digest, doc_id, title, replace, train, index, namespace, callbacks)

    async def amemorize(self, text: str | bytes, doc_id: str | None = None, title: str | None = None, **kwargs: Any):
        """:meth:`memorize` in a thread, for event loops (with ``background=True`` it returns once stored)."""
        import asyncio

        return await asyncio.to_thread(self.memorize, text, doc_id, title, **kwargs)

    def _memorize(self, text, digest, doc_id, title, replace, train, index, namespace, callbacks, *, pending=False):
        """The write of :meth:`memorize` (arguments checked). ``pending``: a background job trains it later."""
        from lift_memory.segment import tokenize
        from lift_memory.usage import PeakMemory

        started = time.perf_counter()
        with self._lock, self._writing(), self.bank.transaction(doc_id, undo=self._undo) as txn:
            old, damaged = self._previous(doc_id, digest, replace)
            stale = (damaged and self.config.retrieval.enabled) or (old or {}).get("indexed")
            store = self.retriever.store if index or stale else None
            eng = self.engine  # the store and the model open before anything changes: their faults change nothing
            doc = tokenize(text, eng.tokenizer)
            fits = eng.fits(len(doc))
            train = not fits if train is None else train
            settings = self._settings(train)
            if old is not None and _same_memory(old, digest, eng.base.fingerprint, settings):
                if index and not (old.get("indexed") and old.get("namespace") == namespace):
                    self._sync_index(txn, store, digest, self._chunks(text, doc_id), namespace, old, damaged)
                    old = self.bank.update_manifest(doc_id, indexed=True, namespace=namespace)
                return record_from_manifest(old)
            synthesis = None
            if train:
                with PeakMemory(eng.base.device) as peak:
                    stream = self._task_stream(text, digest)
                    stats, state, tasks, synthesis = eng.train(doc, doc_id, callbacks, stream)
                checked = eng.check_recall(text)
                reason = f"trained {stats.steps} steps ({stats.stop_reason})"
            else:
                peak = checked = None
                stats, state, tasks = None, None, {}
                reason = (
                    "not fine-tuned yet: its adapter trains in the background"
                    if pending
                    else f"not fine-tuned: fits the context window ({len(doc)} tokens), read in context"
                    if fits
                    else "not fine-tuned (train=False)"
                )
            chunks = self._chunks(text, doc_id) if index else None
            manifest = {
                "doc_id": doc_id,
                "title": title,
                "doc_hash": digest,
                "n_chars": len(text),
                "n_tokens": len(doc),
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "base": {
                    "name": eng.base.name,
                    "fingerprint": eng.base.fingerprint,
                    "tokenizer": eng.base.tokenizer_fingerprint,
                },
                "indexed": index,
                "namespace": namespace,
                **_training_fields(eng, train, reason, stats, tasks, synthesis, settings),
                "usage": _usage(stats, len(doc), started, peak),
                "self_check": checked,
            }
            self._sync_index(txn, store, digest, chunks, namespace, old, damaged)
            self.bank.save(doc_id, text=text, manifest=manifest, state=state)
            manifest = self.bank.manifest(doc_id)
        eng.slot.remember(doc_id, state, manifest)
        self._remember_settings()
        return record_from_manifest(manifest)

    # -- background jobs ---------------------------------------------------------------------------------

    def _memorize_in_background(self, text, digest, doc_id, title, replace, train, index, namespace, callbacks):
        from lift_memory.segment import tokenize

        if train is False:
            raise ConfigError("background=True trains an adapter; it cannot go with train=False")
        eng = self.engine
        args = (text, digest, doc_id, title, replace)
        if train is None and eng.fits(len(tokenize(text, eng.tokenizer))):
            return self._memorize(*args, None, index, namespace, callbacks)  # read in context: nothing to train
        try:
            old = self._manifest(doc_id)
        except (UnknownDocumentError, DamagedMemoryError):
            old = None
        if old is not None and _same_memory(old, digest, eng.base.fingerprint, self._settings(True)):
            return self._memorize(*args, True, index, namespace, callbacks)  # memorized already: a no-op
        record = self._memorize(*args, False, index, namespace, (), pending=True)
        if self.detached:
            self.close()  # before the job is visible: a process that sees it may open the embedded index
        job = Job(doc_id, digest, "queued", max_steps=eng.train_config.max_steps, queued=now(), pid=os.getpid())
        self._jobs.write(job)
        WORKER.submit(self._job_key(doc_id), lambda hook: self._run_job(job, text, callbacks, hook))
        return record

    def _run_job(self, job: Job, text: str, callbacks: Sequence[Any], hook) -> None:
        """Run ``job`` in the worker's thread, in the machine's training turn, and record how it ended."""
        book = self._jobs
        book.clear_cancel(job.doc_id)

        def check(step: int) -> None:
            hook(step)
            if book.cancel_requested(job.doc_id):
                raise Cancelled("cancelled on request")

        try:
            with training_turn(check):
                self._train_job(job, text, callbacks, check)
        except Cancelled as exc:
            self._jobs.write(dataclasses.replace(job, state="cancelled", error=str(exc) or None, finished=now()))
        except Exception as exc:
            error = f"{type(exc).__name__}: {first_line(exc)}"
            self._jobs.write(dataclasses.replace(job, state="failed", error=error, finished=now()))
        finally:
            book.clear_cancel(job.doc_id)

    def _train_job(self, job: Job, text: str, callbacks: Sequence[Any], check) -> None:
        """Train ``job``'s document on the training engine and store its adapter."""
        from lift_memory.segment import tokenize
        from lift_memory.usage import PeakMemory

        job = self._jobs.write(dataclasses.replace(job, state="training"))
        eng = self._training_engine()
        written = [time.monotonic()]

        def progress(info) -> None:
            check(info.step)
            if time.monotonic() - written[0] >= 1.0:  # the job file follows the steps, at most once a second
                written[0] = time.monotonic()
                self._jobs.write(dataclasses.replace(job, step=info.step))

        started, doc = time.perf_counter(), tokenize(text, eng.tokenizer)
        with PeakMemory(eng.base.device) as peak:
            stream = self._task_stream(text, job.doc_hash)
            stats, state, tasks, synthesis = eng.train(doc, job.doc_id, [*callbacks, progress], stream)
        checked = eng.check_recall(text)
        with self._lock, self._writing(), self.bank.transaction(job.doc_id, undo=self._undo):
            current = self._manifest(job.doc_id)
            if current["doc_hash"] != job.doc_hash or current["trained"]:
                raise Cancelled("the document was written again while it trained")
            reason = f"trained {stats.steps} steps ({stats.stop_reason}) in the background"
            manifest = {key: current[key] for key in _DOCUMENT_FIELDS}
            manifest |= _training_fields(eng, True, reason, stats, tasks, synthesis, self._settings(True))
            manifest["usage"] = _usage(stats, len(doc), started, peak)
            manifest["self_check"] = checked
            self.bank.save(job.doc_id, text=text, manifest=manifest, state=state)
        if self._engine is not None:
            self._engine.forget(job.doc_id)  # the next answer loads the new adapter
        self._jobs.write(dataclasses.replace(job, state="ready", step=stats.steps, finished=now()))

    def _training_engine(self):
        with self._lock:
            if self._trainer is None:
                from lift_memory.engine import Engine

                self._trainer = Engine(self.config, self.bank, progress=False)
            return self._trainer

    def _job_key(self, doc_id: str) -> tuple[str, str]:
        return str(self.root.resolve()), doc_id

    def job(self, doc_id: str) -> Job | None:
        """``doc_id``'s last background job (None: it never had one). One left active by a process that ended
        reads as failed, unless that process stored the adapter before it died (then it reads as ready)."""
        job = self._jobs.get(validate_id(doc_id), live=self._held)
        if job is not None and job.state == "failed" and (job.error or "").startswith("interrupted"):
            with contextlib.suppress(LiftMemoryError):
                stored = self._manifest(doc_id)
                if stored["doc_hash"] == job.doc_hash and stored["trained"]:
                    return dataclasses.replace(job, state="ready", error=None)
        return job

    def jobs(self) -> list[Job]:
        """Every document's last background job, by id."""
        return self._jobs.all(live=self._held)

    def _held(self, job: Job) -> bool:
        """Whether this process's worker holds ``job`` (queued or training)."""
        return WORKER.holds(self._job_key(job.doc_id))

    def wait(self, doc_id: str | None = None, timeout: float | None = None) -> bool:
        """Wait until ``doc_id``'s background job (None: every job of this process) has ended; False on timeout."""
        return WORKER.wait(None if doc_id is None else self._job_key(validate_id(doc_id)), timeout)

    def cancel(self, doc_id: str, timeout: float | None = None) -> Job | None:
        """Stop ``doc_id``'s background job, in this process or another one (within a training step), and return
        its state once stopped (or at ``timeout``); the document stays stored and indexed, without an adapter."""
        self._cancel_job(validate_id(doc_id), timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.job(doc_id)) is not None and job.active:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return job

    def _cancel_job(self, doc_id: str, timeout: float | None = None) -> None:
        """Stop ``doc_id``'s job: wait for it if this process runs it, else ask the process that does."""
        if WORKER.cancel(self._job_key(doc_id)):
            WORKER.wait(self._job_key(doc_id), timeout)
        elif (job := self.job(doc_id)) is not None and job.active:
            self._jobs.request_cancel(doc_id)

    def _remember_settings(self) -> None:
        """At the folder's first write, store the settings that reopening it must use (:mod:`settings`)."""
        from lift_memory import settings

        if not (self.root / settings.FILE).exists():
            settings.save(self.root, self.config)

    def _previous(self, doc_id: str, digest: str, replace: bool) -> tuple[dict[str, Any] | None, bool]:
        """What ``doc_id`` holds now: (its manifest or None, whether it is damaged); refuses to overwrite a
        different or damaged memory without ``replace`` (called inside the transaction, whose journal has made the
        document's folder)."""
        try:
            old = self._manifest(doc_id)
        except UnknownDocumentError:
            return None, False  # nothing committed under doc_id
        except DamagedMemoryError as exc:
            if not replace:
                raise DocumentExistsError(f"{exc} (or pass replace=True to overwrite it)") from exc
            return None, True
        if old["doc_hash"] != digest and not replace:
            raise DocumentExistsError(
                f"doc_id {doc_id!r} already holds a different document; pass replace=True (CLI: --replace) or "
                "choose another id"
            )
        return old, False

    def _sync_index(self, txn, store, digest, chunks, namespace, old, damaged) -> None:
        """Make the index hold ``chunks`` (None: nothing) of the transaction's document in ``namespace`` and
        nothing anywhere else: where the earlier version was indexed, or, for a damaged record, in every
        namespace. What it changes is journaled first, so a failed or killed write puts it back."""
        if store is None:
            return
        stale = store.namespaces() if damaged else [old.get("namespace")] if old and old.get("indexed") else []
        stale = [ns for ns in stale if ns and (chunks is None or ns != namespace)]
        touched = [*stale, namespace] if chunks is not None else stale
        txn.keep("index", {ns: store.snapshot(ns, txn.doc_id) for ns in touched})
        if chunks is not None:
            store.add(namespace, txn.doc_id, chunks, doc_hash=digest)
        for ns in stale:
            store.delete(ns, txn.doc_id)

    def _undo(self, doc_id: str, undo: dict[str, Any]) -> None:
        """Put back what a failed or killed write changed in the index (the bank restores the rest)."""
        snapshots = undo.get("index") or {}
        if snapshots:
            store = self.retriever.store
            for namespace, snapshot in snapshots.items():
                store.restore(namespace, doc_id, snapshot)

    @contextlib.contextmanager
    def _writing(self):
        """Around a write: if it fails, its rollback may be unfinished (a full disk, a store that is down), so
        the next call tries recovery again."""
        try:
            yield
        except BaseException:
            self._recovered = False
            raise

    def _recover(self) -> None:
        """Once per instance, before its first use: roll back what writers that died mid-write left. Readers see
        the committed memories either way; if the index cannot be repaired now (a store that is down), the
        write is rolled back by the next process that writes the document."""
        from lift_memory.files import writable

        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"root={str(self.root)!r} is a file, not a folder; choose another memory root")
        if self._recovered or not self.bank.docs.is_dir():
            return
        self._recovered = True
        if not writable(self.bank.docs):
            return
        with self._lock:
            try:
                recovered = bool(self.bank.recover(undo=self._undo))
            except LiftMemoryError as exc:
                warnings.warn(f"unfinished writes were not rolled back yet: {exc}", RuntimeWarning, stacklevel=3)
                recovered = True  # perhaps in part
            if recovered and self._engine is not None:
                self._engine.forget()

    # -- ask ---------------------------------------------------------------------------------------------

    def router(self, namespace: str | None = None, k: int | None = None):
        """The :class:`~lift_memory.router.Router` over ``namespace`` (retrieval off: it plans without)."""
        from lift_memory.router import Router

        r = self.config.retrieval
        retriever = _BoundRetriever(self, validate_id(namespace or r.namespace, "namespace")) if r.enabled else None
        return Router(retriever, self.engine, k=k or r.k)

    def _plan(self, question: str, doc_id: str | None, mode: str, namespace: str | None, k: int | None):
        self._recover()
        _nonempty("question", question)
        k = self.config.retrieval.updated(k=k).k
        if doc_id is not None:
            self._manifest(doc_id)  # unknown, unsafe or damaged ids fail here, before any model is loaded
            job = self.job(doc_id)
            if mode == "lift" and job is not None and job.active:
                raise ConfigError(f"{doc_id!r} has no adapter yet, it is {job.describe()}; use mode='auto' or 'rag'")
        plan = self.router(namespace, k).plan(question, doc_id, mode)
        job = None if plan.doc_id is None else self.job(plan.doc_id)
        if job is not None and job.active and plan.adapter is None:
            note = f"{plan.doc_id!r}'s adapter is not ready ({job.describe()}): answered without it"
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
        turns = _turns(history)
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
        with self._lock:
            if self._retriever is None:
                from lift_memory.retrieval.hybrid import HybridRetriever
                from lift_memory.retrieval.store import ChromaStore

                r = self.config.retrieval
                store = ChromaStore(self.root / "index", host=r.host, port=r.port, embedder=self._get_embedder())
                self._retriever = HybridRetriever(store, candidates=r.candidates, phrase_weight=r.phrase_weight)
            return self._retriever

    def close(self) -> None:
        """Release the retrieval index (and with it the index directory, which another process may then open).
        The memory stays usable: the index opens again on next use. Also ``with LiftMemory(...) as memory:``."""
        with self._lock:
            if self._retriever is not None:
                self._retriever.store.close()
                self._retriever = None
            self._index_checked.clear()

    def __enter__(self) -> LiftMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get_embedder(self):
        if self._embedder is None:
            from lift_memory.retrieval.embeddings import DEFAULT_MODEL, SentenceTransformerEmbedder, default_embedder

            name = self.config.retrieval.embedder
            self._embedder = default_embedder() if name == DEFAULT_MODEL else SentenceTransformerEmbedder(name)
        return self._embedder

    def _chunks(self, text: str, doc_id: str):
        from lift_memory.retrieval.chunking import chunk_document

        r = self.config.retrieval
        return chunk_document(text, doc_id, self.engine.tokenizer, size=r.chunk_size, overlap=r.chunk_overlap)

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
        self._recover()
        r = self.config.retrieval
        namespace = validate_id(namespace or r.namespace, "namespace")
        k = r.updated(k=k).k
        _nonempty("query", query)
        doc_ids = None if doc_ids is None else [validate_id(d) for d in doc_ids]
        self._check_index(namespace)
        hits = self.retriever.retrieve(query, namespace, k=2 * k, doc_ids=doc_ids)
        manifests: dict[str, dict[str, Any] | None] = {}  # each hit's document checked once, however many hits
        for doc_id in {hit.doc_id for hit in hits}:
            try:
                manifests[doc_id] = self._manifest(doc_id)
            except LiftMemoryError:
                manifests[doc_id] = None
        return [hit for hit in hits if self._current(namespace, hit, manifests[hit.doc_id])][:k]

    def _check_index(self, namespace: str) -> None:
        """Raise :class:`StoreCorruptedError` if the index lacks what the bank says is indexed in ``namespace``
        (a deleted or damaged chunk log or database): retrieval would otherwise find nothing, silently. Checked
        once per version of the namespace's chunks; documents being written by another process are skipped."""
        from lift_memory.errors import StoreCorruptedError

        store = self.retriever.store
        if self._index_checked.get(namespace) == store.version(namespace):
            return
        missing = []
        for doc_id in self.bank.ids():
            try:
                manifest = self.bank.manifest(doc_id)
            except LiftMemoryError:
                continue
            if not (manifest.get("indexed") and manifest.get("namespace") == namespace) or self.bank.writing(doc_id):
                continue
            if not store.chunks(namespace, doc_id) or store.doc_hash(namespace, doc_id) not in (
                manifest["doc_hash"],
                None,
            ):
                missing.append(doc_id)
        if missing or store.count(namespace) < len(store.chunks(namespace)):
            lacking = f"{len(missing)} memorized document(s) ({', '.join(missing[:5])})" if missing else "chunks"
            raise StoreCorruptedError(
                f"the index of namespace {namespace!r} lacks {lacking}; re-create it from the stored documents "
                "with `lift-memory rebuild`"
            )
        self._index_checked[namespace] = store.version(namespace)

    def _current(self, namespace: str, hit: Snippet, manifest: dict[str, Any] | None) -> bool:
        """Whether ``hit`` belongs to what the bank stores (``manifest``: its document's, None when it has none
        or a damaged one): the document is indexed in ``namespace`` and the chunk is one of the text the
        manifest names (not of a replaced or forgotten one)."""
        if manifest is None:
            return False
        store = self.retriever.store
        chunk = store.chunk(namespace, hit.chunk_id)
        return (
            bool(manifest.get("indexed"))
            and manifest.get("namespace") == namespace
            and chunk is not None
            and chunk.doc_id == hit.doc_id
            and store.doc_hash(namespace, hit.doc_id) in (manifest.get("doc_hash"), None)
        )

    def rebuild_index(self) -> dict[str, int]:
        """Re-create the whole retrieval index (Chroma, chunk logs, BM25) from the stored documents, after
        damage or an interrupted write; returns chunks per namespace. Damaged memories are skipped (see
        :meth:`damaged`)."""
        from lift_memory.retrieval.store import rebuild_store

        with self._lock:
            self._recovered = True
            self.bank.recover()  # dead writers' manifests roll back; their index changes are rebuilt below
            documents = []
            for doc_id in self.bank.ids():
                try:
                    manifest = self._manifest(doc_id)
                    if manifest.get("indexed"):
                        text = self.bank.text(doc_id)
                        documents.append(
                            (manifest["namespace"], doc_id, manifest["doc_hash"], self._chunks(text, doc_id))
                        )
                except DamagedMemoryError:
                    continue
            self.close()
            r = self.config.retrieval
            return rebuild_store(
                self.root / "index", documents, embedder=self._get_embedder(), host=r.host, port=r.port
            )

    # -- the bank ----------------------------------------------------------------------------------------

    def _manifest(self, doc_id: str) -> dict[str, Any]:
        """The manifest of ``doc_id``, checked to hold every field a record needs."""
        from pydantic import ValidationError

        manifest = self.bank.manifest(doc_id)
        try:
            _record_schema().validate_python(dataclasses.asdict(record_from_manifest(manifest)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            why = f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}" if isinstance(exc, ValidationError) else exc
            raise self.bank.damaged(doc_id, f"its manifest is incomplete ({type(exc).__name__}: {why})") from exc
        return manifest

    def export(self, doc_id: str, folder: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write ``doc_id``'s LoRA adapter as a standard PEFT folder (``adapter_config.json`` and
        ``adapter_model.safetensors``) that ``PeftModel.from_pretrained`` and vLLM's multi-LoRA serving load;
        returns the folder. The folder appears whole or not at all.

        Raises:
            ConfigError: the document has no adapter (it was read in context), its adapter is Gated Memory (which
                stays in lift-memory's own format), or ``folder`` exists and ``overwrite`` is False.
        """
        import shutil
        import uuid

        from lift_memory.files import storage_errors

        self._recover()
        if not self._manifest(doc_id).get("adapter"):
            raise ConfigError(f"{doc_id!r} was stored without an adapter (read in context): there is nothing to export")
        folder = Path(folder).expanduser()
        if folder.exists() and not overwrite:
            raise ConfigError(
                f"{str(folder)!r} exists; choose another folder or pass overwrite=True (CLI: --overwrite)"
            )
        tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with storage_errors(f"the export folder {folder}"):
                tmp.mkdir(parents=True)
                self.engine.export(doc_id, tmp)
                if folder.exists():
                    shutil.rmtree(folder)
                os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def get(self, doc_id: str) -> MemoryRecord:
        """The stored record of ``doc_id``."""
        self._recover()
        return record_from_manifest(self._manifest(doc_id))

    def list(self) -> list[MemoryRecord]:
        """Records of all stored documents, by id; damaged ones are left out (see :meth:`damaged`)."""
        self._recover()
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
                self._manifest(doc_id)
            except DamagedMemoryError as exc:
                found[doc_id] = str(exc)
        return found

    def forget(self, doc_id: str) -> None:
        """Delete ``doc_id``'s document, adapter, manifest and retrieval chunks (a damaged memory included).

        All or nothing: if the store fails, or the process dies, the memory stays as it was.
        """
        if not self.bank.exists(doc_id):
            self.bank.manifest(doc_id)  # raises UnknownDocumentError, listing what is stored
        self._recover()
        self._cancel_job(doc_id)
        with self._lock, self._writing(), self.bank.transaction(doc_id, undo=self._undo) as txn:
            try:
                manifest = self._manifest(doc_id)
                namespaces = [manifest["namespace"]] if manifest.get("indexed") else []
            except (DamagedMemoryError, UnknownDocumentError):
                namespaces = None  # damaged, or files without a manifest: its chunks may be in any namespace
            if (namespaces is None and self.config.retrieval.enabled) or namespaces:
                store = self.retriever.store
                namespaces = store.namespaces() if namespaces is None else namespaces
                txn.keep("index", {ns: store.snapshot(ns, doc_id) for ns in namespaces})
                for ns in namespaces:
                    store.delete(ns, doc_id)
            self.bank.delete(doc_id)
            self._jobs.remove(doc_id)
        if self._engine is not None:
            self._engine.forget(doc_id)


_DOCUMENT_FIELDS = ("doc_id", "title", "doc_hash", "n_chars", "n_tokens", "created", "base", "indexed", "namespace")
"""The manifest's fields that the document, not its training, determines."""


def _training_fields(eng, train: bool, reason: str, stats, tasks, synthesis, settings) -> dict[str, Any]:
    """The manifest's fields that training determines (``eng``: the engine whose adapter slot trained)."""
    return {
        "adapter": eng.adapter.describe() if train else None,
        "trained": train,
        "reason": reason,
        "train": stats.to_dict() if stats else None,
        "tasks": tasks,
        "synthesis": None if synthesis is None else dataclasses.asdict(synthesis),
        "start": eng.slot.start if train else None,
        "settings": settings,
    }


def _usage(stats, n_tokens: int, started: float, peak) -> dict[str, Any]:
    """The manifest's ``usage``: what the write cost (``peak``: the training's :class:`PeakMemory`, or None)."""
    mb = None if peak is None or peak.mb is None else round(peak.mb, 1)
    seconds = round(time.perf_counter() - started, 3)
    tokens = stats.tokens if stats else 0
    kind = "rss" if peak is None else peak.kind
    return dataclasses.asdict(Usage(tokens, n_tokens, 0, seconds, mb, kind))


def _nonempty(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r:.40}")


_ROLES = ("system", "user", "assistant")


def _turns(history: Sequence[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    """``history`` checked: (role, text) pairs with a known role."""
    turns = []
    for turn in history or ():
        if not (isinstance(turn, Sequence) and len(turn) == 2 and turn[0] in _ROLES and isinstance(turn[1], str)):
            raise ConfigError(f"history turns are (role, text) pairs with a role in {_ROLES}, got {turn!r:.60}")
        turns.append((turn[0], turn[1]))
    return tuple(turns)


def _same_memory(old: dict[str, Any], digest: str, fingerprint: str, settings: dict[str, Any]) -> bool:
    """Whether a stored manifest already holds this text, trained on this base model with these settings."""
    return old["doc_hash"] == digest and old["base"]["fingerprint"] == fingerprint and old.get("settings") == settings


@functools.cache
def _record_schema():
    from pydantic import TypeAdapter

    return TypeAdapter(MemoryRecord)


def record_from_manifest(m: dict[str, Any]) -> MemoryRecord:
    """The :class:`MemoryRecord` view of a stored manifest."""
    return MemoryRecord(
        doc_id=m["doc_id"],
        title=m.get("title"),
        doc_hash=m["doc_hash"],
        n_chars=m["n_chars"],
        n_tokens=m["n_tokens"],
        base_model=m["base"]["name"],
        adapter=m.get("adapter"),
        trained=m["trained"],
        reason=m["reason"],
        created=m["created"],
        train=TrainStats(**m["train"]) if m.get("train") else None,
        tasks=m.get("tasks", {}),
        indexed=m.get("indexed", False),
        namespace=m.get("namespace"),
        usage=Usage(**m["usage"]) if m.get("usage") else None,
        self_check=SelfCheck(**m["self_check"]) if m.get("self_check") else None,
        extra={
            "base": m["base"],
            "settings": m.get("settings", {}),
            "synthesis": m.get("synthesis"),
            "start": m.get("start"),
        },
    )
