"""The adapter slot: which document's weights the attached adapter holds, a small cache of recent states, the
compatibility check before a state is loaded, and the pre-LIFT starting point every training run starts from.

Switching documents is a tensor copy into the one attached adapter, never a model reload.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from lift_memory.bank import AdapterBank
from lift_memory.errors import AdapterMismatchError, ConfigError
from lift_memory.manifest import BaseIdentity, Manifest, check_fits

START_FILE = "start.safetensors"
START_MANIFEST = "prelift.json"
_STATE_CACHE = 8  # adapter states kept in RAM, most recently used first


class AdapterSlot:
    """``adapter`` attached to ``base``, loaded on demand with the weights of documents in ``bank``."""

    def __init__(self, base, adapter, bank: AdapterBank) -> None:
        self.base, self.adapter, self.bank = base, adapter, bank
        self.start: dict[str, Any] | None = None  # identity of the pre-LIFT starting point, when there is one
        # Keyed by (doc_id, content-named file), so a document another process replaced is read anew.
        self.loaded: tuple[str, str] | None = None  # whose weights are in the slot
        self.states: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def use(self, doc_id: str | None):
        """Context in which the model runs with ``doc_id``'s adapter (None: the exact base model)."""
        if doc_id is None:
            return self.adapter.disabled()
        manifest = self.bank.manifest(doc_id)
        key = (doc_id, manifest.adapter_file)
        if key != self.loaded:
            state = self.states.get(key)
            if state is None:
                self.check(manifest)
                state = self.bank.load_state(doc_id)
                if state is None:
                    raise AdapterMismatchError(f"{doc_id!r} was stored without an adapter; ask it with mode='icl'")
            self.adapter.load_state_dict(state, source=f"adapter of {doc_id!r}")
            self.states[key] = state
            self.loaded = key
        self.states.move_to_end(key)
        while len(self.states) > _STATE_CACHE:
            self.states.popitem(last=False)
        return contextlib.nullcontext()

    def check(self, manifest: Manifest) -> None:
        """Refuse a document's adapter trained on another base model, tokenizer or adapter layout."""
        check_fits(
            repr(manifest.doc_id),
            manifest.base,
            manifest.adapter,
            self.base,
            self.adapter.describe(),
            "open it with that model and adapter config, or memorize the document again",
        )

    def reset(self) -> None:
        """Back to the starting point, before a training run."""
        self.adapter.reset()
        self.loaded = None

    def remember(self, doc_id: str, state: dict[str, Any] | None, manifest: Manifest) -> None:
        """Cache a freshly stored adapter state (it is what the slot holds after training)."""
        self.forget(doc_id)
        if state is not None:
            self.loaded = (doc_id, manifest.adapter_file)
            self.states[self.loaded] = state

    def forget(self, doc_id: str | None = None) -> None:
        """Drop the cached states of ``doc_id`` (None: of every document)."""
        for key in [key for key in self.states if doc_id is None or key[0] == doc_id]:
            del self.states[key]
        if self.loaded is not None and (doc_id is None or self.loaded[0] == doc_id):
            self.loaded = None

    def load_start(self, path: str | Path) -> None:
        """Make the pre-LIFT starting point at ``path`` the adapter's initial state, after checking that it fits.

        Raises:
            AdapterMismatchError: it was trained on another base model, tokenizer or adapter layout.
            ConfigError: ``path`` holds no starting point.
        """
        from safetensors.torch import load_file

        path = Path(path)
        try:
            manifest = json.loads((path / START_MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{str(path)!r} holds no pre-LIFT starting point ({START_MANIFEST} missing or unreadable)"
            ) from exc
        check_fits(
            f"the starting point at {str(path)!r}",
            BaseIdentity(**manifest["base"]),
            manifest["adapter"],
            self.base,
            self.adapter.describe(),
            "use the same model and adapter config, or run prelift again",
        )
        data = (path / START_FILE).read_bytes()
        self.adapter.set_initial(load_file(path / START_FILE))
        self.start = {
            "path": str(path),
            "id": hashlib.sha256(data).hexdigest()[:16],
            "steps": manifest["train"]["steps"],
        }
