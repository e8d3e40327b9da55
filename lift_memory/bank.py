"""Per-document memories on disk: the document, its adapter weights and a JSON manifest.

Layout under the memory root::

    docs/<doc_id>/document-<sha>.txt             the memorized text (ask reads its head and tail)
    docs/<doc_id>/adapter-<sha>.safetensors      adapter weights
    docs/<doc_id>/manifest.json                  what was trained, on which base model, and how

Every file is written to a temporary name and renamed into place. Text and weights are named by their
content; the manifest goes last and names them, so a reader sees either the old memory or the new one, never a mix, and a crash in the middle
loses nothing that was stored before. Safetensors only: no pickle is ever loaded.

The bank knows nothing about models, training or retrieval.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from lift_memory.errors import StoreCorruptedError, UnknownDocumentError
from lift_memory.files import atomic_write
from lift_memory.ids import validate_id

MANIFEST = "manifest.json"
FORMAT = 1


class AdapterBank:
    """Documents, adapters and manifests under ``root/docs``, keyed by validated document ids."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.docs = self.root / "docs"

    def _dir(self, doc_id: str) -> Path:
        return self.docs / validate_id(doc_id)

    def __contains__(self, doc_id: str) -> bool:
        return (self._dir(doc_id) / MANIFEST).is_file()

    def ids(self) -> list[str]:
        """Stored document ids, sorted."""
        if not self.docs.is_dir():
            return []
        return sorted(p.parent.name for p in self.docs.glob(f"*/{MANIFEST}"))

    def manifest(self, doc_id: str) -> dict[str, Any]:
        """The manifest of ``doc_id``; :class:`UnknownDocumentError` if none is stored."""
        path = self._dir(doc_id) / MANIFEST
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UnknownDocumentError(self._unknown(doc_id)) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreCorruptedError(
                f"manifest of {doc_id!r} is unreadable ({exc}); forget and re-memorize it"
            ) from exc

    def _unknown(self, doc_id: str) -> str:
        known = self.ids()
        listing = ", ".join(known[:5]) + (" ..." if len(known) > 5 else "") if known else "none stored yet"
        return f"no memory with doc_id {doc_id!r} (stored: {listing}); see `lift-memory list`"

    def text(self, doc_id: str) -> str:
        return (self._dir(doc_id) / self.manifest(doc_id)["document_file"]).read_text(encoding="utf-8")

    def load_state(self, doc_id: str) -> dict[str, Any] | None:
        """The adapter tensors of ``doc_id`` (None when it was stored without an adapter)."""
        from safetensors.torch import load_file

        file = (self.manifest(doc_id).get("adapter") or {}).get("file")
        if not file:
            return None
        try:
            return load_file(self._dir(doc_id) / file)
        except (OSError, ValueError, RuntimeError) as exc:  # safetensors raises SafetensorError(RuntimeError)
            raise StoreCorruptedError(
                f"adapter of {doc_id!r} is unreadable ({exc}); forget and re-memorize it"
            ) from exc

    def save(self, doc_id: str, *, text: str, manifest: dict[str, Any], state: dict[str, Any] | None) -> None:
        """Store a document atomically: text and adapter under content names first, the manifest last."""
        from safetensors.torch import save

        folder = self._dir(doc_id)
        manifest = {"format": FORMAT, **manifest, "document_file": self._put(folder, "document", ".txt", text.encode())}
        if state is not None:
            file = self._put(folder, "adapter", ".safetensors", save(state))
            manifest["adapter"] = {**(manifest.get("adapter") or {}), "file": file}
        atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
        named = {manifest["document_file"], (manifest.get("adapter") or {}).get("file"), MANIFEST}
        for path in folder.iterdir():  # files of an earlier version, no longer named by the manifest
            if path.name not in named and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    @staticmethod
    def _put(folder: Path, stem: str, suffix: str, data: bytes) -> str:
        name = f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
        if not (folder / name).exists():
            atomic_write(folder / name, data)
        return name

    def update_manifest(self, doc_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the manifest of ``doc_id`` (atomic) and return the result."""
        manifest = {**self.manifest(doc_id), **fields}
        atomic_write(self._dir(doc_id) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        return manifest

    def delete(self, doc_id: str) -> None:
        """Remove ``doc_id``: renamed away first (atomic for readers), then deleted."""
        self.manifest(doc_id)
        trash = self.docs / f".trash-{uuid.uuid4().hex}"
        os.replace(self._dir(doc_id), trash)
        shutil.rmtree(trash, ignore_errors=True)
