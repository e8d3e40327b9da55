"""Task synthesis as a stream: generators work concurrently, tasks reach the trainer as they arrive.

A :class:`TaskGenerator` splits a document into units and writes tasks for a unit. :class:`TaskStream` runs
the units on an event loop in a background thread, at most ``concurrency`` at a time, so training can start
on the first tasks while the rest are written. Each unit is retried (tenacity: bounded attempts, exponential
backoff with jitter) when its output is rejected or the call fails transiently; when its attempts are spent
it is skipped and counted, never raised: a misbehaving generator costs tasks, not the memorize call. The
finished task list is cached per (document, generator, prompt version), so memorizing the same document again
costs no generation.

This module knows generators and tasks; nothing about models or training.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from lift_memory.errors import GeneratorError, StorageError
from lift_memory.files import atomic_write
from lift_memory.types import Task

_MAX_BACKOFF = 2.0  # seconds, at most, between two tries of a unit


class GenerationRejected(GeneratorError):
    """A generator's output was unusable: not JSON, empty answers, evidence not in the document. Retried."""


@runtime_checkable
class TaskGenerator(Protocol):
    """Writes training tasks about a document, one unit (a span of it) at a time."""

    identity: str
    """Names the generator and its settings (part of the cache key)."""
    prompt_version: str
    """Changes whenever its prompts change (part of the cache key)."""

    def plan(self, text: str) -> list[tuple[int, int]]:
        """The units of work: character spans of ``text``."""
        ...

    async def agenerate(self, text: str, unit: tuple[int, int], attempt: int) -> list[Task]:
        """Tasks for ``unit``; ``attempt`` counts retries (0 first), e.g. to sample instead of decoding greedily.

        Raise :class:`GenerationRejected` for unusable output, ``TimeoutError``/``ConnectionError`` for
        transient failures; both are retried.
        """
        ...


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (GenerationRejected, TimeoutError, asyncio.TimeoutError, ConnectionError))


def usable(task: Task, text: str) -> bool:
    """A task is usable when prompt and answer are non-empty and its evidence lies in the document (generators
    mark evidence they could not find in it with offsets -1)."""
    return bool(task.prompt.strip() and task.answer.strip()) and 0 <= task.evidence_start < task.evidence_end <= len(
        text
    )


@dataclass
class SynthesisStats:
    """What synthesis did for one document."""

    generator: str
    units: int = 0
    made: int = 0
    skipped_units: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    rejected: int = 0
    """Tasks dropped from otherwise usable output (empty answers, evidence not in the document)."""
    cached: bool = False
    seconds: float = 0.0
    first_task_seconds: float | None = None


def cache_key(doc_hash: str, generator: TaskGenerator) -> str:
    return hashlib.sha256(f"{doc_hash}|{generator.identity}|{generator.prompt_version}".encode()).hexdigest()[:24]


class TaskStream:
    """Tasks of one document, produced in the background; :meth:`tasks` shows those that exist so far.

    Args:
        generator: who writes the tasks.
        text: the document.
        doc_hash: the document's hash (cache key).
        cache_dir: where finished task lists are kept (None: no cache).
        concurrency: units in flight at once.
        max_attempts: tries per unit before it is skipped.
        timeout: seconds per attempt.
    """

    def __init__(
        self,
        generator: TaskGenerator,
        text: str,
        doc_hash: str,
        *,
        cache_dir: Path | None = None,
        concurrency: int = 8,
        max_attempts: int = 3,
        timeout: float = 120.0,
    ) -> None:
        self.generator, self.text = generator, text
        self.concurrency, self.max_attempts, self.timeout = concurrency, max_attempts, timeout
        self.cache_file = None if cache_dir is None else Path(cache_dir) / f"{cache_key(doc_hash, generator)}.json"
        self.stats = SynthesisStats(generator=generator.identity)
        self._tasks: list[Task] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._abandoned = False
        self._finished = 0  # units done or skipped
        self._started = 0.0

    def start(self) -> TaskStream:
        """Load the cached tasks, or start writing them in the background."""
        if self.cache_file is not None and self.cache_file.is_file():
            try:
                data = json.loads(self.cache_file.read_text(encoding="utf-8"))
                self._tasks = [Task(**t) for t in data["tasks"]]
                self.stats = SynthesisStats(**{**data["stats"], "cached": True})
                return self
            except (OSError, ValueError, KeyError, TypeError):  # a damaged cache entry: write the tasks again
                self._tasks, self.stats = [], SynthesisStats(generator=self.generator.identity)
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="lift-memory-synthesis", daemon=True)
        self._thread.start()
        return self

    def tasks(self) -> list[Task]:
        """The tasks written so far (a snapshot, in arrival order)."""
        with self._lock:
            return list(self._tasks)

    @property
    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def deadline(self) -> float:
        """Seconds after :meth:`start` by which every unit has finished if the generator honours cancellation:
        each wave of ``concurrency`` units spends at most ``max_attempts`` tries of ``timeout`` seconds, plus
        the backoff between tries."""
        waves = -(-max(self.stats.units, 1) // self.concurrency)
        return waves * self.max_attempts * (self.timeout + _MAX_BACKOFF) + 1.0

    def wait(self) -> SynthesisStats:
        """Block until every unit is done or skipped, at most until :meth:`deadline`: a generator that blocks
        without yielding (and so ignores its per-try timeout) is abandoned then, its unfinished units counted
        as skipped (``"abandoned"``) and nothing cached. Caches a finished result; returns the statistics."""
        if self._thread is not None:
            self._thread.join(max(self._started + self.deadline() - time.monotonic(), 0.0))
            if self._thread.is_alive():  # a daemon thread: it cannot keep the process alive either
                with self._lock:
                    stats = replace(self.stats, skip_reasons=dict(self.stats.skip_reasons))
                    self._abandoned = True
                    left = max(stats.units - self._finished, 0)
                stats.skipped_units += left
                stats.skip_reasons["abandoned"] = left
                self.stats, self._thread = stats, None
                return stats
            self._thread = None
            if self._error is not None:
                raise self._error
            if self.cache_file is not None:
                payload = {"tasks": [t.to_dict() for t in self._tasks], "stats": asdict(self.stats)}
                with contextlib.suppress(StorageError):  # the cache saves work next time; a full disk costs it
                    atomic_write(self.cache_file, json.dumps(payload).encode("utf-8"))
        return self.stats

    def _run(self) -> None:
        try:
            asyncio.run(self._generate_all())
        except BaseException as exc:  # handed to wait(), which raises it in the caller's thread
            self._error = exc

    async def _generate_all(self) -> None:
        started = time.perf_counter()
        units = self.generator.plan(self.text)
        self.stats.units = len(units)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(unit: tuple[int, int]) -> None:
            async with gate:
                try:
                    tasks = await self._with_retries(unit)
                except Exception as exc:  # a misbehaving generator loses this unit; it is counted, not raised
                    reason = type(exc).__name__
                    with self._lock:
                        self._finished += 1
                        if self._abandoned:
                            return
                        self.stats.skipped_units += 1
                        self.stats.skip_reasons[reason] = self.stats.skip_reasons.get(reason, 0) + 1
                    return
                with self._lock:
                    self._finished += 1
                    if self._abandoned:
                        return
                    self._tasks.extend(tasks)
                    self.stats.made += len(tasks)
                    if self.stats.first_task_seconds is None and tasks:
                        self.stats.first_task_seconds = round(time.perf_counter() - started, 3)

        await asyncio.gather(*(one(u) for u in units))
        with self._lock:
            if not self._abandoned:
                self.stats.seconds = round(time.perf_counter() - started, 3)

    async def _with_retries(self, unit: tuple[int, int]) -> list[Task]:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=_MAX_BACKOFF),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                self.stats.attempts += 1
                number = attempt.retry_state.attempt_number - 1
                produced = await asyncio.wait_for(self.generator.agenerate(self.text, unit, number), self.timeout)
                kept = [t for t in produced if usable(t, self.text)]
                self.stats.rejected += len(produced) - len(kept)
                if not kept:
                    raise GenerationRejected(
                        f"no usable task among {len(produced)} (empty, or evidence not in the document)"
                    )
                return kept
        raise AssertionError("unreachable: tenacity re-raises the last error")
