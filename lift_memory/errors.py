"""The exception hierarchy of lift_memory.

Every error the library raises on purpose derives from :class:`LiftMemoryError`, and also from the builtin
that best describes it, so ``except ValueError`` keeps working for callers who do not know this package.
Messages are one line: the value received and what fixes the call.
"""

from __future__ import annotations


class LiftMemoryError(Exception):
    """Root of every error raised by lift_memory."""


class ConfigError(LiftMemoryError, ValueError):
    """A configuration value is out of range or inconsistent with another one."""


class InvalidDocumentError(LiftMemoryError, ValueError):
    """A document is empty, whitespace only, or not text."""


class InvalidIdError(LiftMemoryError, ValueError):
    """A document id or namespace is not a safe file name."""


class UnknownDocumentError(LiftMemoryError, LookupError):
    """No memory is stored under the requested document id."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class DocumentExistsError(LiftMemoryError, FileExistsError):
    """A different document is already stored under the requested id."""


class DamagedMemoryError(LiftMemoryError, OSError):
    """A stored memory (its manifest, document or adapter file) is damaged or incomplete. Only that memory is
    affected: forget it, or memorize it again with ``replace=True``."""


class DocumentBusyError(LiftMemoryError, TimeoutError):
    """Another process (or thread) is writing the same document; nothing was changed."""


class StorageError(LiftMemoryError, OSError):
    """The memory root cannot be written: permission denied, a read-only file system, or a full disk. What was
    stored before is unchanged."""


class AdapterMismatchError(LiftMemoryError, ValueError):
    """A stored adapter was trained on another base model, tokenizer or adapter layout."""


class ModelLoadError(LiftMemoryError, OSError):
    """A base model or tokenizer could not be loaded."""


class StoreError(LiftMemoryError, OSError):
    """The retrieval store failed; nothing already stored was lost."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The Chroma server could not be reached after bounded retries."""


class StoreLockedError(StoreError):
    """Another process holds the persistent store."""


class StoreCorruptedError(StoreError):
    """The retrieval index is damaged or missing; `lift-memory rebuild` re-creates it from the stored documents."""


class GeneratorError(LiftMemoryError, RuntimeError):
    """A task generator failed in a way that retrying cannot fix."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), for one-line errors that wrap
    a library's multi-line ones."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
