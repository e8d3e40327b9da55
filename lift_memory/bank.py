"""Per-document memories on disk: the document, its adapter weights and a JSON manifest.

Layout under the memory root::

    docs/<doc_id>/document-<sha>.txt             the memorized text (ask reads its head and tail)
    docs/<doc_id>/adapter-<sha>.safetensors      adapter weights
    docs/<doc_id>/manifest.json                  what was trained, on which base model, and how
    locks/<doc_id>.lock                          held by the process that writes the document

Every file is written to a temporary name and renamed into place. Text and weights are named by their
content; the manifest goes last and names them, so a reader sees either the old memory or the new one, never a
mix. Writers take the document's lock (:meth:`AdapterBank.transaction`) for the whole check-then-write, and a
transaction that fails, by an exception or Ctrl-C, puts the old manifest back; one killed outright leaves the old
or the new manifest, both whole, and the next writer prunes the files it left. Nothing read from disk is trusted:
file names taken from a manifest must be this module's own, and a manifest that cannot be read makes only its own
memory fail, with :class:`DamagedMemoryError`. Safetensors only: no pickle is ever loaded.

The bank knows nothing about models, training or retrieval.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lift_memory.errors import DamagedMemoryError, UnknownDocumentError, first_line
from lift_memory.files import atomic_write, locked, storage_errors
from lift_memory.ids import validate_id

MANIFEST = "manifest.json"
FORMAT = 1
_PREVIOUS = ".manifest.previous"  # the manifest a running transaction restores if it fails
_OWN_FILE = re.compile(r"(document-[0-9a-f]{16}\.txt|adapter-[0-9a-f]{16}\.safetensors)")
_WAY_OUT = "forget it, or memorize it again with replace=True (CLI: --replace)"


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

    def _dir(self, doc_id: str) -> Path:
        return self.docs / validate_id(doc_id)

    def __contains__(self, doc_id: str) -> bool:
        return (self._dir(doc_id) / MANIFEST).is_file()

    def ids(self) -> list[str]:
        """Stored document ids (damaged ones included), sorted."""
        if not self.docs.is_dir():
            return []
        return sorted(p.parent.name for p in self.docs.glob(f"*/{MANIFEST}") if not p.parent.name.startswith("."))

    def exists(self, doc_id: str) -> bool:
        """Whether anything is stored under ``doc_id``, a damaged or incomplete record included."""
        return self._dir(doc_id).is_dir()

    # -- reading -----------------------------------------------------------------------------------------

    def manifest(self, doc_id: str) -> dict[str, Any]:
        """The manifest of ``doc_id``: :class:`UnknownDocumentError` if none is stored,
        :class:`DamagedMemoryError` if it cannot be read or names files that are not its own."""
        path = self._dir(doc_id) / MANIFEST
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            cached = self._cache.get(doc_id)
            if cached is not None and cached[0] == key:
                return cached[1]
            manifest = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise UnknownDocumentError(self._unknown(doc_id)) from None
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise self.damaged(doc_id, f"its manifest is unreadable ({type(exc).__name__})") from exc
        self._check(doc_id, manifest)
        self._cache[doc_id] = (key, manifest)
        return manifest

    def _check(self, doc_id: str, manifest: Any) -> None:
        if not isinstance(manifest, dict):
            raise self.damaged(doc_id, "its manifest is not a JSON object")
        files = [manifest.get("document_file"), (manifest.get("adapter") or {}).get("file")]
        for name in files:
            if name is not None and not (isinstance(name, str) and _OWN_FILE.fullmatch(name)):
                raise self.damaged(doc_id, f"its manifest names a file that is not its own ({name!r})")
        if not isinstance(files[0], str):
            raise self.damaged(doc_id, "its manifest names no document file")

    def damaged(self, doc_id: str, why: str) -> DamagedMemoryError:
        """The error for a damaged record of ``doc_id`` (for callers that find other damage in it)."""
        return DamagedMemoryError(f"the memory {doc_id!r} is damaged: {why}; {_WAY_OUT}")

    def _unknown(self, doc_id: str) -> str:
        known = self.ids()
        listing = ", ".join(known[:5]) + (" ..." if len(known) > 5 else "") if known else "none stored yet"
        return f"no memory with doc_id {doc_id!r} (stored: {listing}); see `lift-memory list`"

    def text(self, doc_id: str) -> str:
        """The stored document of ``doc_id``."""
        file = self._dir(doc_id) / self.manifest(doc_id)["document_file"]
        try:
            return file.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise self.damaged(doc_id, f"its document file {file.name} is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self.damaged(doc_id, f"its document file is unreadable ({type(exc).__name__})") from exc

    def load_state(self, doc_id: str) -> dict[str, Any] | None:
        """The adapter tensors of ``doc_id`` (None when it was stored without an adapter)."""
        from safetensors.torch import load_file

        file = (self.manifest(doc_id).get("adapter") or {}).get("file")
        if not file:
            return None
        try:
            return load_file(self._dir(doc_id) / file)
        except FileNotFoundError:
            raise self.damaged(doc_id, f"its adapter file {file} is missing") from None
        except Exception as exc:  # safetensors raises SafetensorError, an Exception of its own, for bad files
            raise self.damaged(doc_id, f"its adapter file is unreadable ({first_line(exc)})") from exc

    # -- writing -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, doc_id: str) -> Iterator[None]:
        """Hold ``doc_id``'s inter-process lock; if the block fails, put the manifest back as it was.

        Every write of a document (``save``, ``update_manifest``, ``delete``) happens inside one. Files the
        restored (or the new) manifest does not name are pruned when the block ends.
        """
        folder = self._dir(doc_id)
        with locked(self.root / "locks" / f"{doc_id}.lock", timeout=self.lock_timeout, what=f"doc_id {doc_id!r}"):
            self._prune(doc_id)  # what a killed writer left
            manifest, previous = folder / MANIFEST, folder / _PREVIOUS
            had = manifest.is_file()
            if had:
                with storage_errors(f"the memory {doc_id!r}"):
                    previous.unlink(missing_ok=True)
                    try:
                        os.link(manifest, previous)  # new manifests replace the name, the old inode stays
                    except OSError:
                        shutil.copy2(manifest, previous)
            try:
                yield
            except BaseException:
                if had and previous.exists():
                    os.replace(previous, manifest)
                elif folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
                self._cache.pop(doc_id, None)
                raise
            finally:
                self._prune(doc_id)

    def _prune(self, doc_id: str) -> None:
        """Remove files of ``doc_id`` that its manifest does not name (earlier versions, temporaries)."""
        folder = self._dir(doc_id)
        if not folder.is_dir():
            return
        try:
            manifest = self.manifest(doc_id)
        except DamagedMemoryError:
            return  # keep everything of a damaged record: forget or replace decides
        except UnknownDocumentError:
            named: set[str] = set()
        else:
            named = {MANIFEST, manifest["document_file"], (manifest.get("adapter") or {}).get("file")}
        with contextlib.suppress(OSError):  # a read-only root prunes nothing, and loses nothing
            for path in folder.iterdir():
                if path.name not in named:
                    path.unlink(missing_ok=True)

    def save(self, doc_id: str, *, text: str, manifest: dict[str, Any], state: dict[str, Any] | None) -> None:
        """Store a document: text and adapter under content names first, the manifest last (call it inside
        :meth:`transaction`, which prunes the earlier version's files)."""
        from safetensors.torch import save

        folder = self._dir(doc_id)
        manifest = {"format": FORMAT, **manifest, "document_file": self._put(folder, "document", ".txt", text.encode())}
        if state is not None:
            file = self._put(folder, "adapter", ".safetensors", save(state))
            manifest["adapter"] = {**(manifest.get("adapter") or {}), "file": file}
        self._write_manifest(doc_id, manifest)

    def _write_manifest(self, doc_id: str, manifest: dict[str, Any]) -> None:
        atomic_write(self._dir(doc_id) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
        self._cache.pop(doc_id, None)

    @staticmethod
    def _put(folder: Path, stem: str, suffix: str, data: bytes) -> str:
        name = f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
        if not (folder / name).exists():
            atomic_write(folder / name, data)
        return name

    def update_manifest(self, doc_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the manifest of ``doc_id`` (atomic) and return the result."""
        manifest = {**self.manifest(doc_id), **fields}
        self._write_manifest(doc_id, manifest)
        return manifest

    def delete(self, doc_id: str) -> None:
        """Remove ``doc_id``, a damaged record included: renamed away first (atomic for readers), then deleted."""
        folder = self._dir(doc_id)
        if not folder.is_dir():
            raise UnknownDocumentError(self._unknown(doc_id))
        trash = self.docs / f".trash-{uuid.uuid4().hex}"
        with storage_errors(f"the memory {doc_id!r}"):
            os.replace(folder, trash)
        self._cache.pop(doc_id, None)
        shutil.rmtree(trash, ignore_errors=True)
        for stale in self.docs.glob(".trash-*"):  # left by a process killed while deleting
            shutil.rmtree(stale, ignore_errors=True)
