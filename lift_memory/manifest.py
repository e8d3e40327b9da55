"""The manifest: what is stored about one memorized document, on disk as ``manifest.json``.

A versioned pydantic model. The bank reads and writes it (and refuses one that does not validate, as a damaged
memory); the memorize path builds it; :meth:`Manifest.record` is the public :class:`MemoryRecord` view;
:func:`check_fits` is the one compatibility check of stored weights against a loaded model.
Format 1 is the only one so far; a manifest of a later format is refused with a message naming the cause.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lift_memory.errors import AdapterMismatchError
from lift_memory.types import MemoryRecord, SelfCheck, TrainStats, Usage

FORMAT = 1
ADDED_SETTINGS: dict[str, dict[str, Any]] = {"train": {"max_epochs": None}, "tasks": {"distill_tokens": None}}
"""Settings added since format 1 was first written, each with its value that means "as before". A memory
stored before a field existed lacks it; at that value the field is left out of the comparison, so that an
upgrade does not make every stored memory look different (and train again)."""
OWN_FILE = re.compile(r"(document-[0-9a-f]{16}\.txt|adapter-[0-9a-f]{16}\.safetensors)")
"""The only file names a manifest may name: its own content-named files, never a path."""


class BaseIdentity(BaseModel):
    """The base model a memory was made with (an adapter loads only onto the same model and tokenizer)."""

    model_config = ConfigDict(frozen=True)

    name: str
    fingerprint: str
    tokenizer: str


class Manifest(BaseModel):
    """One memorized document: its text's identity, how it was trained (or why not), where it is indexed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: int = FORMAT
    doc_id: str
    title: str | None = None
    doc_hash: str
    n_chars: int
    n_tokens: int
    created: str = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    base: BaseIdentity
    indexed: bool = False
    namespace: str | None = None
    """The retrieval namespace its chunks are indexed in (when ``indexed``)."""
    trained: bool = False
    reason: str
    adapter: dict[str, Any] | None = None
    """``Adapter.describe()`` and, once stored, ``file``; None without an adapter."""
    train: TrainStats | None = None
    tasks: dict[str, int] = Field(default_factory=dict)
    synthesis: dict[str, Any] | None = None
    start: dict[str, Any] | None = None
    """The pre-LIFT starting point its adapter trained from."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """What besides the text and the base model determined it (memorizing again with the same is a no-op)."""
    usage: Usage | None = None
    self_check: SelfCheck | None = None
    document_file: str | None = None
    """Set by the bank when it stores the text."""
    version: int = 1
    """1 for the first text stored under the id, one more for each text that replaced it."""
    stale: bool = False
    """The adapter was trained on an earlier version of the text; this version's trains in the background."""
    incremental: dict[str, Any] | None = None
    """How this version's adapter was re-trained from the previous one's (None: from scratch)."""

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value > FORMAT:
            raise ValueError(f"it has format {value}, written by a newer lift-memory (this one reads {FORMAT})")
        return value

    @field_validator("document_file")
    @classmethod
    def _own_document(cls, name: str | None) -> str | None:
        return _own(name)

    @field_validator("adapter")
    @classmethod
    def _own_adapter(cls, adapter: dict[str, Any] | None) -> dict[str, Any] | None:
        if adapter is not None:
            _own(adapter.get("file"))
        return adapter

    @property
    def adapter_ready(self) -> bool:
        """Whether its adapter was trained on this very text (not a stale one kept from an earlier version)."""
        return self.trained and not self.stale

    @property
    def adapter_file(self) -> str | None:
        return (self.adapter or {}).get("file")

    def made_with(self, fingerprint: str, settings: dict[str, Any]) -> bool:
        """Whether this memory is current (not stale) and was made on this base model with these settings."""
        return (
            self.base.fingerprint == fingerprint
            and comparable(self.settings) == comparable(settings)
            and not self.stale
        )

    def same_memory(self, digest: str, fingerprint: str, settings: dict[str, Any]) -> bool:
        """Whether this already holds ``digest``'s text, trained on this base model with these settings."""
        return self.doc_hash == digest and self.made_with(fingerprint, settings)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode("utf-8")

    def record(self) -> MemoryRecord:
        """The public :class:`MemoryRecord` view."""
        return MemoryRecord(
            doc_id=self.doc_id,
            title=self.title,
            doc_hash=self.doc_hash,
            n_chars=self.n_chars,
            n_tokens=self.n_tokens,
            base_model=self.base.name,
            adapter=self.adapter,
            trained=self.trained,
            reason=self.reason,
            created=self.created,
            train=self.train,
            tasks=dict(self.tasks),
            indexed=self.indexed,
            namespace=self.namespace,
            usage=self.usage,
            self_check=self.self_check,
            version=self.version,
            extra={
                "base": self.base.model_dump(),
                "settings": self.settings,
                "synthesis": self.synthesis,
                "start": self.start,
                "stale": self.stale,
                "incremental": self.incremental,
            },
        )


def comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without the :data:`ADDED_SETTINGS` that hold their "as before" value."""
    out = dict(settings)
    for section, fields in ADDED_SETTINGS.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in fields or fields[k] != v}
    return out


def check_fits(
    what: str, base: BaseIdentity, adapter: dict[str, Any] | None, live_base, live_adapter: dict, remedy: str
):
    """Refuse weights (a document's adapter, a starting point) described by a manifest's ``base`` and ``adapter``
    entries when they were trained on another base model, tokenizer or adapter layout than ``live_base`` (a
    loaded model) and ``live_adapter`` (``Adapter.describe()``). The one compatibility check for every reader.

    Raises:
        AdapterMismatchError: naming ``what`` and ending in ``remedy``.
    """
    if base.fingerprint != live_base.fingerprint or base.tokenizer != live_base.tokenizer_fingerprint:
        raise AdapterMismatchError(
            f"{what} was trained on base model {base.name!r} (fingerprint {base.fingerprint}), this memory "
            f"runs {live_base.name!r} ({live_base.fingerprint}); {remedy}"
        )
    stored = {k: v for k, v in (adapter or {}).items() if k != "file"}
    if stored and stored != live_adapter:
        raise AdapterMismatchError(
            f"{what} has a {stored.get('kind')} adapter {stored.get('config')}, this memory uses "
            f"{live_adapter['kind']} {live_adapter['config']}; {remedy}"
        )


def _own(name: Any) -> Any:
    if name is not None and not (isinstance(name, str) and OWN_FILE.fullmatch(name)):
        raise ValueError(f"it names a file that is not its own ({name!r})")
    return name
