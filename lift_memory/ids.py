"""Document ids and document text: validation before anything touches a path or a model.

Ids become directory names and Chroma metadata, so they are checked here, once, against a strict pattern.
Documents arrive as ``str`` or ``bytes``; both are normalized to text or rejected with one clear line.
"""

from __future__ import annotations

import hashlib
import re

from lift_memory.errors import InvalidDocumentError, InvalidIdError

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RESERVED = {"con", "prn", "aux", "nul"}  # device names some file systems refuse


def validate_id(value: object, what: str = "doc_id") -> str:
    """Return ``value`` if it is a safe file name, else raise :class:`InvalidIdError`.

    Safe: 1-128 characters of letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit,
    without ``..``.
    """
    if not isinstance(value, str) or not _ID.fullmatch(value) or ".." in value or value.lower() in _RESERVED:
        raise InvalidIdError(
            f"{what} {value!r} is not a safe name: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return value


def document_text(document: str | bytes) -> str:
    """Return the document as text, or raise :class:`InvalidDocumentError` for empty or binary input."""
    if isinstance(document, (bytes, bytearray, memoryview)):
        try:
            document = bytes(document).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidDocumentError(
                f"document is not UTF-8 text (invalid byte at offset {exc.start}); decode it to str first"
            ) from exc
    if not isinstance(document, str):
        raise InvalidDocumentError(f"document must be str or bytes, got {type(document).__name__}")
    if not document.strip():
        raise InvalidDocumentError("document is empty or whitespace only; pass the text to memorize")
    if "\x00" in document or _control_ratio(document) > 0.01:
        raise InvalidDocumentError("document looks binary (NUL or control characters); pass extracted text")
    return document


def _control_ratio(text: str) -> float:
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    return controls / len(sample)


def document_hash(text: str) -> str:
    """SHA-256 of the UTF-8 text: identical text, identical hash."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_doc_id(text: str) -> str:
    """The id a document gets when the caller names none: derived from its content."""
    return f"doc-{document_hash(text)[:12]}"


def nonempty(name: str, value: object) -> None:
    """Refuse anything but a non-empty string (a question, a query) with a :class:`ConfigError`."""
    if not isinstance(value, str) or not value.strip():
        from lift_memory.errors import ConfigError

        raise ConfigError(f"{name} must be a non-empty string, got {value!r:.40}")
