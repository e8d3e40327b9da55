"""Helpers for the fault suite: writer processes to race, kill or interrupt, and a witness of stored memories.

A :func:`witness` records everything a user could observe of the memories under a root: the checksum of every
stored file, each record, each document's text and adapter weights, and what retrieval returns for each
document. Two witnesses compare equal exactly when no memory was lost or altered.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lift_test_helpers import TEXT, HashEmbedder

from lift_memory import LiftMemory
from lift_memory.errors import LiftMemoryError

WORKER = Path(__file__).with_name("fault_worker.py")

ALPHA = TEXT
BETA = (
    "Marie Curie won two Nobel prizes, in physics and in chemistry. The lighthouse keeper logged every storm. "
    "Bread rises because yeast breathes out carbon dioxide. Seven bridges crossed the river at Konigsberg.\n\n"
) * 5
GAMMA = (
    "The orchard grew forty kinds of apples. A violin has four strings tuned in fifths. "
    "The ferry to the island leaves at noon and returns at dusk. Copper turns green in the rain.\n\n"
) * 5
QUERIES = {"alpha": "Ada Lovelace and Alan Turing", "beta": "Marie Curie Nobel prizes", "gamma": "violin strings"}


_HASH = object()


def open_memory(root: Path, model_dir: Path, config, *, embedder=_HASH, **kwargs) -> LiftMemory:
    """A memory on the tiny model; the embedder is the deterministic HashEmbedder unless given (None: the
    default, as the CLI uses)."""
    embedder = HashEmbedder() if embedder is _HASH else embedder
    return LiftMemory(config, root=root, model=str(model_dir), embedder=embedder, progress=False, **kwargs)


def stored_files(root: Path) -> dict[str, str]:
    """sha256 of every file of the stored memories (``docs/``), by relative path."""
    docs = Path(root) / "docs"
    return {
        p.relative_to(docs).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(docs.rglob("*"))
        if p.is_file()
    }


def witness(memory: LiftMemory, skip: tuple[str, ...] = ()) -> dict:
    """What a user can observe of every stored memory but those in ``skip`` (see the module docstring)."""
    records = memory.list()  # first: it rolls back what dead writers left
    seen: dict = {"files": stored_files(memory.root), "memories": {}}
    for record in records:
        if record.doc_id in skip:
            continue
        doc_id = record.doc_id
        state = memory.bank.load_state(doc_id)
        adapter = None
        if state is not None:
            digest = hashlib.sha256()
            for name in sorted(state):
                digest.update(name.encode() + state[name].numpy().tobytes())
            adapter = digest.hexdigest()
        hits = None
        if record.indexed:
            query = QUERIES.get(doc_id, record.title or doc_id)
            found = memory.retrieve(query, [doc_id], namespace=record.namespace, k=3)
            hits = [(h.chunk_id, h.text) for h in found]
        seen["memories"][doc_id] = {
            "record": json.loads(json.dumps(record.to_dict(), default=str)),
            "text": memory.bank.text(doc_id),
            "adapter": adapter,
            "hits": hits,
        }
    return seen


def one_line(exc: BaseException) -> str:
    """The message of a typed, one-line error (asserts both)."""
    assert isinstance(exc, LiftMemoryError), f"{type(exc).__name__} is not a LiftMemoryError: {exc}"
    message = str(exc)
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


class Worker:
    """A running fault_worker.py; its stdout lines are read in the background."""

    def __init__(self, root: Path, model_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(root), str(model_dir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout} s; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"exited before {marker!r}; saw {self.seen}; stderr: {self.proc.stderr.read()}")
            self.seen.append(line)
            if line.startswith(marker):
                return

    def result(self, timeout: float = 180.0) -> str:
        """The last line (``OK ...`` or ``ERR ...``) once the process has exited."""
        self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        last = self.seen[-1] if self.seen else ""
        assert last.startswith(("OK", "ERR")), f"saw {self.seen}; stderr: {self.proc.stderr.read()}"
        return last

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def cli(*args: str, env: dict | None = None, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run the installed ``lift-memory`` command."""
    command = shutil.which("lift-memory", path=os.path.dirname(sys.executable)) or "lift-memory"
    return subprocess.run(
        [command, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
