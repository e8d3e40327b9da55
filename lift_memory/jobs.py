"""Background memorizing: jobs, their states on disk, and the one worker that trains them.

``memorize(..., background=True)`` stores and indexes a document at once, then queues a :class:`Job`: the
worker trains the document's adapter on its own copy of the base model (the memory's own copy keeps
answering meanwhile) and stores the adapter in a short transaction of its own. One worker per process takes
the jobs in order, and a lock file in the cache folder gives the machine one training turn, so two documents
never train at once on one CPU, also when several processes queue jobs.

A job's state lives in ``<root>/jobs/<doc_id>.json`` (written atomically), so another process, or this one
after a restart, sees it: ``queued``, ``training`` (with its step), ``ready``, ``failed`` (with the error) or
``cancelled``. A job left ``queued`` or ``training`` by a process that has ended reads as ``failed``
("interrupted"); the document stays memorized without an adapter, answered by retrieval and in-context reading.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from lift_memory.files import atomic_write

State = Literal["queued", "training", "ready", "failed", "cancelled"]
ACTIVE = ("queued", "training")


@dataclass(frozen=True, slots=True)
class Job:
    """A background training job of one document."""

    doc_id: str
    doc_hash: str
    state: State
    step: int = 0
    max_steps: int | None = None
    error: str | None = None
    queued: str = ""
    finished: str | None = None
    pid: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def describe(self) -> str:
        """One line: ``training (step 12/40)``, ``failed: ...``."""
        if self.state == "training":
            return f"training (step {self.step}/{self.max_steps or '?'})"
        return f"{self.state}: {self.error}" if self.error else self.state

    def to_dict(self) -> dict:
        return asdict(self)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class JobBook:
    """The job files of a memory folder (``<root>/jobs``)."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "jobs"

    def _path(self, doc_id: str) -> Path:
        return self.folder / f"{doc_id}.json"

    def write(self, job: Job) -> Job:
        atomic_write(self._path(job.doc_id), json.dumps(job.to_dict(), indent=2).encode())
        return job

    def get(self, doc_id: str, *, live: Callable[[Job], bool] | None = None) -> Job | None:
        """``doc_id``'s last job, or None. An active job whose process has ended (or, in this process, that no
        worker holds: ``live``) reads as failed."""
        try:
            job = Job(**json.loads(self._path(doc_id).read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            return Job(doc_id, "", "failed", error="its job file is unreadable")
        if job.active and not (live(job) if live is not None and job.pid == os.getpid() else _alive(job.pid)):
            return replace(job, state="failed", error="interrupted: the process that ran it ended")
        return job

    def all(self, *, live: Callable[[Job], bool] | None = None) -> list[Job]:
        if not self.folder.is_dir():
            return []
        ids = sorted(p.stem for p in self.folder.glob("*.json") if not p.name.startswith("."))
        return [job for doc_id in ids if (job := self.get(doc_id, live=live)) is not None]

    def remove(self, doc_id: str) -> None:
        for path in (self._path(doc_id), self._cancel_path(doc_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _cancel_path(self, doc_id: str) -> Path:
        return self.folder / f"{doc_id}.cancel"

    def request_cancel(self, doc_id: str) -> None:
        """Ask the process that trains ``doc_id`` to stop (it looks after every step)."""
        atomic_write(self._cancel_path(doc_id), b"")

    def cancel_requested(self, doc_id: str) -> bool:
        return self._cancel_path(doc_id).exists()

    def clear_cancel(self, doc_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._cancel_path(doc_id).unlink()


@contextlib.contextmanager
def training_turn(check: Callable[[int], None], folder: Path | None = None):
    """Hold this machine's one training turn (a lock file in the cache folder, ``folder``), so that background
    jobs of several processes (``memorize --background`` twice) train one at a time too. ``check`` runs while
    waiting, so a job cancelled in the queue leaves it. Where the folder cannot be written, jobs go without."""
    from filelock import FileLock, Timeout

    from lift_memory.files import cache_dir

    folder = cache_dir() if folder is None else folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / "training.lock"))
        while True:
            check(0)
            try:
                lock.acquire(timeout=0.5)
                break
            except Timeout:
                continue
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


class Cancelled(Exception):
    """Raised inside a job's training callback when the job is cancelled (never leaves the worker)."""


@dataclass
class _Task:
    key: tuple[str, str]  # (root, doc_id)
    run: Callable[[Callable[[int], None]], None]
    """Trains and stores; called with a per-step hook that raises :class:`Cancelled` when asked to stop."""
    cancelled: threading.Event


class Worker:
    """The process's one training thread: takes jobs in order, one at a time."""

    def __init__(self) -> None:
        self._queue: queue.Queue[_Task] = queue.Queue()
        self._tasks: dict[tuple[str, str], _Task] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def submit(self, key: tuple[str, str], run: Callable[[Callable[[int], None]], None]) -> None:
        task = _Task(key, run, threading.Event())
        with self._lock:
            if (old := self._tasks.get(key)) is not None:
                old.cancelled.set()  # a newer job of the same document supersedes it
            self._tasks[key] = task
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lift-memory-trainer", daemon=True)
                self._thread.start()
        self._queue.put(task)

    def holds(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._tasks

    def cancel(self, key: tuple[str, str]) -> bool:
        with self._lock:
            task = self._tasks.get(key)
        if task is None:
            return False
        task.cancelled.set()
        return True

    def wait(self, key: tuple[str, str] | None = None, timeout: float | None = None) -> bool:
        """Block until ``key``'s job (None: every job) has ended; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: key not in self._tasks if key else not self._tasks, timeout)

    def _loop(self) -> None:
        while True:
            task = self._queue.get()

            def hook(step: int, task: _Task = task) -> None:
                if task.cancelled.is_set():
                    raise Cancelled

            try:
                task.run(hook)  # records its own outcome in the job file
            except Exception:  # a bug in a job must not stop the jobs queued after it
                logging.getLogger(__name__).exception("background job %s failed", task.key)
            finally:
                with self._idle:
                    if self._tasks.get(task.key) is task:
                        del self._tasks[task.key]
                    self._idle.notify_all()


WORKER = Worker()
