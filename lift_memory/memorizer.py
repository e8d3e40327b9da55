"""The write side of a memory: memorize (dedupe, then train, store and index) and forget, as transactions.

Memorize: validate everything -> take the document's lock -> open the retrieval store -> the engine trains the
adapter slot -> the bank stores text, adapter and manifest -> the store indexes the chunks. If a step fails, the
bank's transaction puts the earlier memory back, the index included (its undo data is journaled before it
changes). The trainer and the bank never meet: this module hands the trained tensors from one to the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lift_memory.bank import AdapterBank, Transaction
from lift_memory.config import MemoryConfig
from lift_memory.edits import Edit, diff
from lift_memory.engine import LazyEngine
from lift_memory.errors import (
    ConfigError,
    DamagedMemoryError,
    DocumentExistsError,
    LiftMemoryError,
    UnknownDocumentError,
)
from lift_memory.ids import default_doc_id, document_hash, document_text, validate_id
from lift_memory.manifest import BaseIdentity, Manifest
from lift_memory.retrieval.factory import Retrieval
from lift_memory.types import MemoryRecord, Usage


@dataclass(frozen=True)
class Update:
    """Re-memorizing a changed document from its previous adapter (:meth:`Memorizer.update`)."""

    state: dict[str, Any]
    """The previous adapter's weights: the start."""
    edit: Edit
    version: int
    """The version whose adapter it continues."""

    def describe(self, stats) -> dict[str, Any]:
        return {"from_version": self.version, "changed": round(self.edit.fraction, 4), "steps": stats.steps}


def trained_reason(stats, update: Update | None, where: str = "") -> str:
    if update is None:
        return f"trained {stats.steps} steps ({stats.stop_reason}){where}"
    return (
        f"re-trained {stats.steps} steps ({stats.stop_reason}){where} from version {update.version}'s adapter, on "
        f"the changed {update.edit.fraction:.1%} of the text and a replay sample of the rest"
    )


@dataclass(frozen=True)
class Write:
    """One memorize request, checked (see :meth:`LiftMemory.memorize` for the arguments)."""

    text: str
    digest: str
    doc_id: str
    title: str | None
    replace: bool
    train: bool | None
    index: bool
    namespace: str
    callbacks: tuple[Any, ...] = ()


class Memorizer:
    """Memorize and forget documents of ``bank``, with the model ``engine()`` loads (a
    :class:`~lift_memory.engine.LazyEngine`, told when a document changes) and the index of ``retrieval``."""

    def __init__(
        self,
        root: Path,
        config: MemoryConfig,
        bank: AdapterBank,
        retrieval: Retrieval,
        engine: LazyEngine,
        lock: threading.RLock,
        generator: Any = None,
    ) -> None:
        self.root, self.config, self.bank, self.retrieval = root, config, bank, retrieval
        self.engine, self.lock = engine, lock
        self._generator = generator
        self._recovered = False

    def request(self, text, doc_id, title, *, replace, train, index, namespace, callbacks: Sequence[Any] = ()) -> Write:
        """Check a memorize call's arguments, before anything loads or changes."""
        text = document_text(text)
        doc_id = validate_id(doc_id) if doc_id is not None else default_doc_id(text)
        namespace = validate_id(namespace or self.config.retrieval.namespace, "namespace")
        if title is not None and not isinstance(title, str):
            raise ConfigError(f"title must be a string, got {type(title).__name__}")
        index = self.config.retrieval.enabled if index is None else bool(index)
        return Write(text, document_hash(text), doc_id, title, replace, train, index, namespace, tuple(callbacks))

    # -- tasks and settings ------------------------------------------------------------------------------

    def generator(self):
        """The task generator memorize uses (None: segments and sentence windows only)."""
        if self._generator is None and self.config.tasks.generator == "extractive":
            from lift_memory.tasks.extractive import ExtractiveGenerator

            self._generator = ExtractiveGenerator(seed=self.config.train.seed)
        return self._generator

    def task_stream(self, text: str, digest: str):
        """Start writing ``text``'s training tasks in the background (None without a generator)."""
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

    def settings(self, train: bool) -> dict[str, Any]:
        """What, besides the text and the base model, determines a stored memory."""
        c, eng, generator = self.config, self.engine(), self.generator()
        return {
            "segment": c.segment.model_dump(mode="json"),
            "train": eng.train_config.model_dump(mode="json"),
            "adapter": c.adapter.model_dump(mode="json"),
            "tasks": c.tasks.model_dump(mode="json"),
            "generator": None if generator is None else f"{generator.identity}|{generator.prompt_version}",
            "start": None if eng.slot.start is None else eng.slot.start["id"],
            "train_adapter": train,
        }

    # -- memorize ----------------------------------------------------------------------------------------

    def update(self, w: Write, old: Manifest | None) -> Update | None:
        """How re-memorizing ``w`` over ``old`` continues from ``old``'s adapter: one trained on this text's
        predecessor (not stale), on the same base model with the same settings, the text changed by at most
        ``train.incremental``. None: train from scratch."""
        eng = self.engine()
        c = eng.train_config
        if not (c.incremental > 0 and old is not None and old.trained and old.adapter_file):
            return None
        if old.doc_hash == w.digest or not old.made_with(eng.base.fingerprint, self.settings(True)):
            return None
        try:
            edit = diff(self.bank.text(w.doc_id), w.text, replay=c.replay, seed=c.seed)
            if edit.fraction > c.incremental:
                return None
            eng.slot.check(old)
            return Update(self.bank.load_state(w.doc_id), edit, old.version)
        except LiftMemoryError:  # a damaged or foreign previous adapter: start over
            return None

    def write(self, w: Write, *, pending: bool = False, update: Update | None = None) -> MemoryRecord:
        """Memorize ``w`` in one transaction. ``pending``: store and index it untrained, for a background job; with
        ``update``, the previous adapter stays in place (marked stale) until the job's is ready."""
        from lift_memory.segment import tokenize
        from lift_memory.usage import PeakMemory

        started = time.perf_counter()
        with self.lock, self.writing(), self.bank.transaction(w.doc_id, undo=self.undo) as txn:
            old, damaged = self._previous(w)
            stale = (damaged and self.config.retrieval.enabled) or (old is not None and old.indexed)
            store = self.retrieval.store if w.index or stale else None
            eng = self.engine()  # the store and the model open before anything changes: their faults change nothing
            doc = tokenize(w.text, eng.tokenizer)
            fits = eng.fits(len(doc))
            train = not fits if w.train is None else w.train
            settings = self.settings(train)
            if old is not None and old.same_memory(w.digest, eng.base.fingerprint, settings):
                if w.index and not (old.indexed and old.namespace == w.namespace):
                    self._sync_index(txn, store, w, self.retrieval.chunks(w.text, w.doc_id), old, damaged)
                    old = self.bank.update_manifest(w.doc_id, indexed=True, namespace=w.namespace)
                return old.record()
            synthesis = None
            version = 1 if old is None else old.version + 1
            kept: dict[str, Any] = {}
            if train:
                update = self.update(w, old)
                with PeakMemory(eng.base.device) as peak:
                    stats, state, tasks, synthesis = eng.train(
                        doc, w.doc_id, w.callbacks, self.task_stream(w.text, w.digest),
                        start=None if update is None else update.state, edit=None if update is None else update.edit,
                    )  # fmt: skip
                checked = eng.check_recall(w.text)
                reason = trained_reason(stats, update)
                kept = {"incremental": None if update is None else update.describe(stats)}
            elif pending and update is not None and old is not None:  # the previous adapter answers meanwhile
                peak = checked = stats = state = None
                fields = ("adapter", "trained", "train", "tasks", "synthesis", "start", "settings", "self_check")
                kept = {name: getattr(old, name) for name in fields} | {"stale": True}
                tasks = old.tasks
                reason = (
                    f"version {version}: the text changed; version {old.version}'s adapter answers until this "
                    "version's trains in the background"
                )
            else:
                peak = checked = stats = state = None
                tasks = {}
                reason = (
                    "not fine-tuned yet: its adapter trains in the background"
                    if pending
                    else f"not fine-tuned: fits the context window ({len(doc)} tokens), read in context"
                    if fits
                    else "not fine-tuned (train=False)"
                )
            fields = dict(
                doc_id=w.doc_id,
                title=w.title,
                doc_hash=w.digest,
                n_chars=len(w.text),
                n_tokens=len(doc),
                base=BaseIdentity(
                    name=eng.base.name, fingerprint=eng.base.fingerprint, tokenizer=eng.base.tokenizer_fingerprint
                ),
                indexed=w.index,
                namespace=w.namespace,
                **training_fields(eng, train, reason, stats, tasks, synthesis, settings),
                usage=usage(stats, len(doc), started, peak),
                self_check=checked,
                version=version,
            )
            manifest = Manifest(**(fields | kept))
            chunks = self.retrieval.chunks(w.text, w.doc_id) if w.index else None
            self._sync_index(txn, store, w, chunks, old, damaged)
            self.bank.save(w.doc_id, text=w.text, manifest=manifest, state=state)
            manifest = self.bank.manifest(w.doc_id)
        eng.slot.remember(w.doc_id, state, manifest)
        self._remember_settings()
        return manifest.record()

    def _previous(self, w: Write) -> tuple[Manifest | None, bool]:
        """What ``w.doc_id`` holds now: (its manifest or None, whether it is damaged); refuses to overwrite a
        different or damaged memory without ``replace`` (called inside the transaction, whose journal has made the
        document's folder)."""
        try:
            old = self.bank.manifest(w.doc_id)
        except UnknownDocumentError:
            return None, False  # nothing committed under doc_id
        except DamagedMemoryError as exc:
            if not w.replace:
                raise DocumentExistsError(f"{exc} (or pass replace=True to overwrite it)") from exc
            return None, True
        if old.doc_hash != w.digest and not w.replace:
            raise DocumentExistsError(
                f"doc_id {w.doc_id!r} already holds a different document; pass replace=True (CLI: --replace) or "
                "choose another id"
            )
        return old, False

    def _sync_index(self, txn: Transaction, store, w: Write, chunks, old: Manifest | None, damaged: bool) -> None:
        """Make the index hold ``chunks`` (None: nothing) of the transaction's document in ``w.namespace`` and
        nothing anywhere else: where the earlier version was indexed, or, for a damaged record, in every
        namespace. What it changes is journaled first, so a failed or killed write puts it back."""
        if store is None:
            return
        stale = store.namespaces() if damaged else [old.namespace] if old is not None and old.indexed else []
        stale = [ns for ns in stale if ns and (chunks is None or ns != w.namespace)]
        touched = [*stale, w.namespace] if chunks is not None else stale
        txn.keep("index", {ns: store.snapshot(ns, txn.doc_id) for ns in touched})
        if chunks is not None:
            store.add(w.namespace, txn.doc_id, chunks, doc_hash=w.digest)
        for ns in stale:
            store.delete(ns, txn.doc_id)

    def _remember_settings(self) -> None:
        """At the folder's first write, store the settings that reopening it must use (:mod:`settings`)."""
        from lift_memory import settings

        if not (self.root / settings.FILE).exists():
            settings.save(self.root, self.config)

    # -- forget ------------------------------------------------------------------------------------------

    def forget(self, doc_id: str) -> None:
        """Delete ``doc_id``'s document, adapter, manifest and retrieval chunks (a damaged memory included), all or
        nothing."""
        with self.lock, self.writing(), self.bank.transaction(doc_id, undo=self.undo) as txn:
            try:
                manifest = self.bank.manifest(doc_id)
                namespaces = [manifest.namespace] if manifest.indexed else []
            except (DamagedMemoryError, UnknownDocumentError):
                namespaces = None  # damaged, or files without a manifest: its chunks may be in any namespace
            if (namespaces is None and self.config.retrieval.enabled) or namespaces:
                store = self.retrieval.store
                namespaces = store.namespaces() if namespaces is None else namespaces
                txn.keep("index", {ns: store.snapshot(ns, doc_id) for ns in namespaces})
                for ns in namespaces:
                    store.delete(ns, doc_id)
            self.bank.delete(doc_id)
        self.engine.forget(doc_id)

    # -- recovery ----------------------------------------------------------------------------------------

    def undo(self, doc_id: str, undo: dict[str, Any]) -> None:
        """Put back what a failed or killed write changed in the index (the bank restores the rest)."""
        for namespace, snapshot in (undo.get("index") or {}).items():
            self.retrieval.store.restore(namespace, doc_id, snapshot)

    @contextlib.contextmanager
    def writing(self):
        """Around a write: if it fails, its rollback may be unfinished (a full disk, a store that is down), so
        the next call tries recovery again."""
        try:
            yield
        except BaseException:
            self._recovered = False
            raise

    def recover(self) -> None:
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
        with self.lock:
            try:
                recovered = bool(self.bank.recover(undo=self.undo))
            except LiftMemoryError as exc:
                warnings.warn(f"unfinished writes were not rolled back yet: {exc}", RuntimeWarning, stacklevel=4)
                recovered = True  # perhaps in part
            if recovered:
                self.engine.forget(None)

    def rebuild_index(self) -> dict[str, int]:
        """Roll back dead writers, then re-create the index from the stored documents."""
        with self.lock:
            self._recovered = True
            self.bank.recover()  # dead writers' manifests roll back; their index changes are rebuilt below
            return self.retrieval.rebuild()


def training_fields(eng, train: bool, reason: str, stats, tasks, synthesis, settings) -> dict[str, Any]:
    """The manifest's fields that training determines (``eng``: the engine whose adapter slot trained)."""
    return {
        "adapter": eng.adapter.describe() if train else None,
        "trained": train,
        "reason": reason,
        "train": stats,
        "tasks": tasks,
        "synthesis": None if synthesis is None else dataclasses.asdict(synthesis),
        "start": eng.slot.start if train else None,
        "settings": settings,
    }


def usage(stats, n_tokens: int, started: float, peak) -> Usage:
    """What a write cost (``peak``: the training's :class:`PeakMemory`, or None)."""
    mb = None if peak is None or peak.mb is None else round(peak.mb, 1)
    seconds = round(time.perf_counter() - started, 3)
    tokens = stats.tokens if stats else 0
    return Usage(tokens, n_tokens, 0, seconds, mb, "rss" if peak is None else peak.kind)
