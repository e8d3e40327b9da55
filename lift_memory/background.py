"""Memorize in the background: store and index a document at once, train its adapter in the process's training
worker (:mod:`lift_memory.jobs`), and store the adapter when it is ready.

Jobs train on an engine of their own (a second copy of the base model), so answering goes on meanwhile; the
machine's one training turn (a lock file) keeps jobs of several processes from training at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

from lift_memory.engine import LazyEngine
from lift_memory.errors import ConfigError, LiftMemoryError, first_line
from lift_memory.jobs import WORKER, Cancelled, Job, JobBook, now, training_turn
from lift_memory.manifest import Manifest
from lift_memory.memorizer import Memorizer, Update, Write, trained_reason, training_fields, usage
from lift_memory.types import MemoryRecord


class Background:
    """Background jobs of the memory at ``root``, written through ``memorizer``."""

    def __init__(self, root: Path, memorizer: Memorizer) -> None:
        self.root, self.memorizer = root, memorizer
        self.book = JobBook(root)
        self.engine = LazyEngine(memorizer.config, memorizer.bank, progress=False)  # the jobs' own engine

    def submit(self, w: Write, *, release_index: bool = False) -> MemoryRecord:
        """Store and index ``w`` untrained, queue its training, and return the record. ``release_index``: close
        the index before the job is queued, for another process to open (``memorize --background``'s own)."""
        from lift_memory.segment import tokenize

        if w.train is False:
            raise ConfigError("background=True trains an adapter; it cannot go with train=False")
        m, eng = self.memorizer, self.memorizer.engine()
        if w.train is None and eng.fits(len(tokenize(w.text, eng.tokenizer))):
            return m.write(w)  # read in context: nothing to train
        try:
            old = m.bank.manifest(w.doc_id)
        except LiftMemoryError:
            old = None
        if old is not None and old.same_memory(w.digest, eng.base.fingerprint, m.settings(True)):
            return m.write(dataclasses.replace(w, train=True))  # memorized already: a no-op
        update = m.update(w, old) if w.replace else None
        record = m.write(dataclasses.replace(w, train=False, callbacks=()), pending=True, update=update)
        if release_index:  # before the job is visible: a process that sees it may open the embedded index
            m.retrieval.close()
        job = Job(w.doc_id, w.digest, "queued", max_steps=eng.train_config.max_steps, queued=now(), pid=os.getpid())
        self.book.write(job)
        WORKER.submit(self._key(w.doc_id), lambda hook: self._run(job, w, hook, update))
        return record

    def _run(self, job: Job, w: Write, hook, update: Update | None) -> None:
        """Run ``job`` in the worker's thread, in the machine's training turn, and record how it ended."""
        book = self.book
        book.clear_cancel(job.doc_id)

        def check(step: int) -> None:
            hook(step)
            if book.cancel_requested(job.doc_id):
                raise Cancelled("cancelled on request")

        try:
            with training_turn(check):
                self._train(job, w, check, update)
        except Cancelled as exc:
            book.write(dataclasses.replace(job, state="cancelled", error=str(exc) or None, finished=now()))
        except Exception as exc:
            error = f"{type(exc).__name__}: {first_line(exc)}"
            book.write(dataclasses.replace(job, state="failed", error=error, finished=now()))
        finally:
            book.clear_cancel(job.doc_id)

    def _train(self, job: Job, w: Write, check, update: Update | None) -> None:
        """Train ``job``'s document on the jobs' engine (from the previous adapter, with ``update``) and store its
        adapter."""
        from lift_memory.segment import tokenize
        from lift_memory.usage import PeakMemory

        m = self.memorizer
        job = self.book.write(dataclasses.replace(job, state="training"))
        eng = self.engine()
        written = [time.monotonic()]

        def progress(info) -> None:
            check(info.step)
            if time.monotonic() - written[0] >= 1.0:  # the job file follows the steps, at most once a second
                written[0] = time.monotonic()
                self.book.write(dataclasses.replace(job, step=info.step))

        started, doc = time.perf_counter(), tokenize(w.text, eng.tokenizer)
        with PeakMemory(eng.base.device) as peak:
            stream = m.task_stream(w.text, job.doc_hash)
            stats, state, tasks, synthesis = eng.train(
                doc, job.doc_id, [*w.callbacks, progress], stream,
                start=None if update is None else update.state, edit=None if update is None else update.edit,
            )  # fmt: skip
        checked = eng.check_recall(w.text)
        with m.lock, m.writing(), m.bank.transaction(job.doc_id, undo=m.undo):
            current = m.bank.manifest(job.doc_id)
            if current.doc_hash != job.doc_hash or current.adapter_ready:
                raise Cancelled("the document was written again while it trained")
            reason = trained_reason(stats, update, " in the background")
            fields = training_fields(eng, True, reason, stats, tasks, synthesis, m.settings(True))
            fields |= {"usage": usage(stats, len(doc), started, peak), "self_check": checked, "stale": False}
            fields |= {"incremental": None if update is None else update.describe(stats)}
            manifest = Manifest.model_validate({**current.model_dump(), **fields})  # the document's fields kept
            m.bank.save(job.doc_id, text=w.text, manifest=manifest, state=state)
        m.engine.forget(job.doc_id)  # the next answer loads the new adapter
        self.book.write(dataclasses.replace(job, state="ready", step=stats.steps, finished=now()))

    def _key(self, doc_id: str) -> tuple[str, str]:
        return str(self.root.resolve()), doc_id

    def job(self, doc_id: str) -> Job | None:
        """``doc_id``'s last job (None: it never had one). One left active by a process that ended reads as
        failed, unless that process stored the adapter before it died (then it reads as ready)."""
        job = self.book.get(doc_id, live=self._held)
        if job is not None and job.state == "failed" and (job.error or "").startswith("interrupted"):
            with contextlib.suppress(LiftMemoryError):
                stored = self.memorizer.bank.manifest(doc_id)
                if stored.doc_hash == job.doc_hash and stored.adapter_ready:
                    return dataclasses.replace(job, state="ready", error=None)
        return job

    def jobs(self) -> list[Job]:
        return self.book.all(live=self._held)

    def _held(self, job: Job) -> bool:
        """Whether this process's worker holds ``job`` (queued or training)."""
        return WORKER.holds(self._key(job.doc_id))

    def wait(self, doc_id: str | None = None, timeout: float | None = None) -> bool:
        return WORKER.wait(None if doc_id is None else self._key(doc_id), timeout)

    def cancel(self, doc_id: str, timeout: float | None = None) -> None:
        """Stop ``doc_id``'s job: wait for it if this process runs it, else ask the process that does."""
        if WORKER.cancel(self._key(doc_id)):
            WORKER.wait(self._key(doc_id), timeout)
        elif (job := self.job(doc_id)) is not None and job.active:
            self.book.request_cancel(doc_id)

    def cancelled(self, doc_id: str, timeout: float | None = None) -> Job | None:
        """:meth:`cancel`, then ``doc_id``'s job state once stopped (or at ``timeout``)."""
        self.cancel(doc_id, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.job(doc_id)) is not None and job.active:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return job
