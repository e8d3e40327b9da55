"""Per-document memories on disk: the document, its adapter weights and a JSON manifest.

Layout under the memory root::

    docs/<doc_id>/document-<sha>.txt             the memorized text (ask reads its head and tail)
    docs/<doc_id>/adapter-<sha>.safetensors      adapter weights
    docs/<doc_id>/manifest.json                  what was trained, on which base model, and how
    docs/<doc_id>/.journal.json                  only during a write: how to undo it
    locks/<doc_id>.lock                          held by the process that writes the document

Every file is written to a temporary name and renamed into place; text and weights are named by their content.
A write is a :class:`Transaction`: it holds the document's inter-process lock for the whole check-then-write,
and before changing anything it writes a journal with the committed manifest (and whatever undo data its caller
adds, such as the document's retrieval chunks). While a journal exists, readers see the manifest it holds, so
they see the old memory until the write commits by removing the journal. A write that fails (an exception,
Ctrl-C) is rolled back at once; one whose process died (kill -9, power loss) is rolled back by the next process
that writes or recovers the document. Either way the earlier memory comes back exactly.

Nothing read from disk is trusted: file names taken from a manifest must be this module's own, and a manifest
that cannot be read makes only its own memory fail, with :class:`DamagedMemoryError`. Safetensors only: no
pickle is ever loaded.

The bank knows nothing about models, training or retrieval: undo data is opaque JSON that the caller's
``undo`` function applies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lift_memory.errors import (
    DamagedMemoryError,
    DocumentBusyError,
    UnknownDocumentError,
    first_line,
)
from lift_memory.files import atomic_write, locked, storage_errors
from lift_memory.ids import validate_id
from lift_memory.manifest import FORMAT, Manifest

MANIFEST = "manifest.json"
JOURNAL = ".journal.json"
_WAY_OUT = "forget it, or memorize it again with replace=True (CLI: --replace)"

Undo = Callable[[str, dict[str, Any]], None]
"""Applies a journal's undo data for a document: ``undo(doc_id, data)``; raising keeps the journal."""


class Transaction:
    """An open write of one document (see :meth:`AdapterBank.transaction`)."""

    def __init__(self, bank: AdapterBank, doc_id: str, committed: str | None) -> None:
        self.bank, self.doc_id = bank, doc_id
        self._journal = {"format": FORMAT, "manifest": committed, "undo": {}}
        self._write()

    def keep(self, key: str, data: Any) -> None:
        """Record undo data (JSON) under ``key``, on disk before the change it undoes; the first record of a key
        wins, since it is the state before the transaction."""
        if key not in self._journal["undo"]:
            self._journal["undo"][key] = data
            self._write()

    def _write(self) -> None:
        with storage_errors(f"the memory {self.doc_id!r}"):
            atomic_write(self.bank._dir(self.doc_id) / JOURNAL, json.dumps(self._journal).encode("utf-8"))


class AdapterBank:
    """Documents, adapters and manifests under ``root/docs``, keyed by validated document ids.

    Args:
        root: the memory root.
        lock_timeout: seconds a writer waits for another process writing the same document before
            :class:`~lift_memory.errors.DocumentBusyError`.
    """

    def __init__(self, root: Path, *, lock_timeout: float = 10.0) -> None:
        self.root = Path(root)
        self.docs = self.root / "docs"
        self.lock_timeout = lock_timeout
        self._cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
        self._writers: dict[str, int] = {}  # doc_id -> thread holding its transaction in this process

    def _dir(self, doc_id: str) -> Path:
        return self.docs / validate_id(doc_id)

    def __contains__(self, doc_id: str) -> bool:
        """Whether a manifest is committed under ``doc_id`` (a damaged one included); reads a file only while a
        write is open, to see what its journal holds."""
        if self._writers.get(doc_id) != threading.get_ident() and self.writing(doc_id):
            try:
                journal = self._read_journal(doc_id)
            except DamagedMemoryError:
                return True
            if journal is not None:
                return journal["manifest"] is not None
        return (self._dir(doc_id) / MANIFEST).is_file()

    def ids(self) -> list[str]:
        """Stored document ids (damaged ones included), sorted."""
        if not self.docs.is_dir():
            return []
        return sorted(
            folder.name
            for folder in self.docs.iterdir()
            if not folder.name.startswith(".") and folder.is_dir() and folder.name in self
        )

    def writing(self, doc_id: str) -> bool:
        """Whether a write of ``doc_id`` is open (in any process) or was left by a dead writer."""
        return (self._dir(doc_id) / JOURNAL).exists()

    def exists(self, doc_id: str) -> bool:
        """Whether anything is stored under ``doc_id``, a damaged or incomplete record included."""
        return self._dir(doc_id).is_dir()

    # -- reading -----------------------------------------------------------------------------------------

    def _committed(self, doc_id: str) -> bytes | None:
        """The committed manifest's bytes: the journal's while another writer's transaction is open (or a dead
        writer's journal awaits recovery), else the manifest file's; None when nothing is committed."""
        folder = self._dir(doc_id)
        if self._writers.get(doc_id) != threading.get_ident():
            journal = self._read_journal(doc_id)
            if journal is not None:
                committed = journal["manifest"]
                return None if committed is None else committed.encode("utf-8", "surrogateescape")
        try:
            return (folder / MANIFEST).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.damaged(doc_id, f"its manifest is unreadable ({type(exc).__name__})") from exc

    def _read_journal(self, doc_id: str) -> dict[str, Any] | None:
        path = self._dir(doc_id) / JOURNAL
        try:
            journal = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(journal, dict) or not isinstance(journal.get("manifest"), str | None):
                raise ValueError("not a journal")
            return journal
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise self.damaged(doc_id, f"its journal is unreadable ({type(exc).__name__})") from exc

    def manifest(self, doc_id: str) -> Manifest:
        """The committed manifest of ``doc_id``: :class:`UnknownDocumentError` if none is stored,
        :class:`DamagedMemoryError` if it cannot be read, does not validate, or names files that are not its
        own."""
        key = None  # the manifest file's identity, when no write is open and it can be cached by it
        if not self.writing(doc_id):
            with contextlib.suppress(OSError):
                stat = (self._dir(doc_id) / MANIFEST).stat()
                key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                cached = self._cache.get(doc_id)
                if cached is not None and cached[0] == key:
                    return cached[1]
        data = self._committed(doc_id)
        if data is None:
            raise UnknownDocumentError(self._unknown(doc_id))
        try:
            manifest = Manifest.model_validate_json(data)
        except ValueError as exc:  # pydantic's ValidationError, bad JSON and bad UTF-8 are ValueErrors
            raise self.damaged(doc_id, f"its manifest is unreadable ({_why(exc)})") from exc
        if key is not None:
            self._cache[doc_id] = (key, manifest)
        return manifest

    def damaged(self, doc_id: str, why: str) -> DamagedMemoryError:
        """The error for a damaged record of ``doc_id`` (for callers that find other damage in it)."""
        return DamagedMemoryError(f"the memory {doc_id!r} is damaged: {why}; {_WAY_OUT}")

    def _unknown(self, doc_id: str) -> str:
        known = self.ids()
        listing = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "") if known else "none"
        return f"no memory with doc_id {doc_id!r} (stored: {listing}); see `lift-memory list`"

    def _file(self, doc_id: str, name: str) -> Path:
        """The path of a file a manifest names, refused if a link leads it out of the document's folder."""
        file = self._dir(doc_id) / name
        try:
            inside = file.resolve().parent == self._dir(doc_id).resolve()
        except OSError:
            inside = False
        if not inside:
            raise self.damaged(doc_id, f"its file {name} leads outside the memory root")
        return file

    def text(self, doc_id: str) -> str:
        """The stored document of ``doc_id``."""
        file = self._file(doc_id, self.manifest(doc_id).document_file or "")
        try:
            return file.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise self.damaged(doc_id, f"its document file {file.name} is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self.damaged(doc_id, f"its document file is unreadable ({type(exc).__name__})") from exc

    def load_state(self, doc_id: str) -> dict[str, Any] | None:
        """The adapter tensors of ``doc_id`` (None when it was stored without an adapter)."""
        from safetensors.torch import load_file

        file = self.manifest(doc_id).adapter_file
        if file is None:
            return None
        try:
            return load_file(self._file(doc_id, file))
        except FileNotFoundError:
            raise self.damaged(doc_id, f"its adapter file {file} is missing") from None
        except Exception as exc:  # safetensors raises SafetensorError, an Exception of its own, for bad files
            raise self.damaged(doc_id, f"its adapter file is unreadable ({first_line(exc)})") from exc

    # -- writing -----------------------------------------------------------------------------------------

    def _lock(self, doc_id: str, timeout: float):
        return locked(self.root / "locks" / f"{doc_id}.lock", timeout=timeout, what=f"doc_id {doc_id!r}")

    @contextlib.contextmanager
    def transaction(self, doc_id: str, undo: Undo | None = None) -> Iterator[Transaction]:
        """Write ``doc_id`` all or nothing: hold its inter-process lock, journal the committed state, and commit
        when the block ends; if the block fails, roll back (``undo`` applies the undo data callers kept, then
        the manifest returns). A dead writer's journal found on entry is rolled back first.

        Every write of a document (``save``, ``update_manifest``, ``delete``) happens inside one.
        """
        folder = self._dir(doc_id)
        with self._lock(doc_id, self.lock_timeout):
            self._roll_back(doc_id, undo)  # what a killed writer left, if anything
            with storage_errors(f"the memory {doc_id!r}"):
                try:  # surrogateescape: a damaged manifest's bytes come back unchanged on rollback
                    committed = (folder / MANIFEST).read_bytes().decode("utf-8", "surrogateescape")
                except FileNotFoundError:
                    committed = None
            self._writers[doc_id] = threading.get_ident()
            try:
                yield Transaction(self, doc_id, committed)
            except BaseException as exc:
                try:
                    self._roll_back(doc_id, undo)
                except Exception as failed:  # the journal stays: the next writer or `recover` finishes it
                    if hasattr(exc, "add_note"):
                        exc.add_note(f"rolling back {doc_id!r} is unfinished ({first_line(failed)}); it is retried")
                raise
            else:
                with storage_errors(f"the memory {doc_id!r}"):
                    (folder / JOURNAL).unlink(missing_ok=True)  # the commit
            finally:
                self._writers.pop(doc_id, None)
                self._cache.pop(doc_id, None)
            self._prune(doc_id)

    def recover(self, undo: Undo | None = None) -> list[str]:
        """Roll back the writes of processes that died mid-write (their journals remain) and whose lock is free;
        returns the ids rolled back. Writes in progress are left alone."""
        done = []
        for journal in sorted(self.docs.glob(f"*/{JOURNAL}")) if self.docs.is_dir() else []:
            doc_id = journal.parent.name
            try:
                with self._lock(doc_id, 0):
                    if self._roll_back(doc_id, undo):
                        done.append(doc_id)
            except DocumentBusyError:
                continue
        return done

    def _roll_back(self, doc_id: str, undo: Undo | None) -> bool:
        """Undo an open journal of ``doc_id`` (its caller holds the lock): undo data first, then the committed
        manifest returns, then the journal goes, so that a failure at any point leaves it to be retried."""
        folder = self._dir(doc_id)
        try:
            journal = self._read_journal(doc_id)
        except DamagedMemoryError:  # atomic writes make this unlikely; without it the manifest file stands
            warnings.warn(f"discarding the unreadable journal of {doc_id!r}", RuntimeWarning, stacklevel=3)
            (folder / JOURNAL).unlink(missing_ok=True)
            return False
        if journal is None:
            return False
        if undo is not None and journal.get("undo"):
            undo(doc_id, journal["undo"])
        self._cache.pop(doc_id, None)
        committed = journal["manifest"]
        if committed is None:  # the document did not exist before
            if folder.is_dir():
                self._remove(folder)
        else:
            data = committed.encode("utf-8", "surrogateescape")
            try:
                unchanged = (folder / MANIFEST).read_bytes() == data
            except OSError:
                unchanged = False
            if not unchanged:  # most failures happen before the manifest is written: nothing to write back
                atomic_write(folder / MANIFEST, data)
            (folder / JOURNAL).unlink(missing_ok=True)
            self._prune(doc_id)
        return True

    def _prune(self, doc_id: str) -> None:
        """Remove files of ``doc_id`` that its manifest does not name (earlier versions, temporaries)."""
        folder = self._dir(doc_id)
        if not folder.is_dir() or (folder / JOURNAL).exists():
            return
        try:
            manifest = self.manifest(doc_id)
        except DamagedMemoryError:
            return  # keep everything of a damaged record: forget or replace decides
        except UnknownDocumentError:
            named: set[str] = set()
        else:
            named = {MANIFEST, manifest.document_file, manifest.adapter_file}
        with contextlib.suppress(OSError):  # a read-only root prunes nothing, and loses nothing
            for path in folder.iterdir():
                if path.name not in named:
                    path.unlink(missing_ok=True)

    def save(self, doc_id: str, *, text: str, manifest: Manifest, state: dict[str, Any] | None) -> None:
        """Store a document: text and adapter under content names first, the manifest last (inside
        :meth:`transaction`, which commits it and prunes the earlier version's files)."""
        from safetensors.torch import save

        folder = self._dir(doc_id)
        update: dict[str, Any] = {"document_file": self._put(folder, "document", ".txt", text.encode())}
        if state is not None:
            file = self._put(folder, "adapter", ".safetensors", save(state))
            update["adapter"] = {**(manifest.adapter or {}), "file": file}
        self._write_manifest(doc_id, manifest.model_copy(update=update))

    def _write_manifest(self, doc_id: str, manifest: Manifest) -> None:
        assert self._writers.get(doc_id) == threading.get_ident(), "writes happen inside a transaction"
        atomic_write(self._dir(doc_id) / MANIFEST, manifest.to_json())
        self._cache.pop(doc_id, None)

    @staticmethod
    def _put(folder: Path, stem: str, suffix: str, data: bytes) -> str:
        name = f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
        if not (folder / name).exists():
            atomic_write(folder / name, data)
        return name

    def update_manifest(self, doc_id: str, **fields: Any) -> Manifest:
        """Set ``fields`` of the manifest of ``doc_id`` (inside :meth:`transaction`) and return the result."""
        manifest = self.manifest(doc_id).model_copy(update=fields)
        self._write_manifest(doc_id, manifest)
        return manifest

    def delete(self, doc_id: str) -> None:
        """Remove ``doc_id``, a damaged record included (inside :meth:`transaction`): renamed away in one step,
        which commits the deletion, then deleted."""
        assert self._writers.get(doc_id) == threading.get_ident(), "writes happen inside a transaction"
        if not self._dir(doc_id).is_dir():
            raise UnknownDocumentError(self._unknown(doc_id))
        self._remove(self._dir(doc_id))
        self._cache.pop(doc_id, None)

    def _remove(self, folder: Path) -> None:
        trash = self.docs / f".trash-{uuid.uuid4().hex}"
        with storage_errors(f"the memory {folder.name!r}"):
            os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        for stale in self.docs.glob(".trash-*"):  # left by a process killed while deleting
            shutil.rmtree(stale, ignore_errors=True)


def _why(exc: ValueError) -> str:
    """What is wrong with a manifest, in a few words: pydantic's first error and where, or the decoder's error."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return (f"{where}: " if where else "") + error["msg"].removeprefix("Value error, ")
    return type(exc).__name__
