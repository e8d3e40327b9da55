from __future__ import annotations

import pytest

from lift_memory.errors import InvalidDocumentError, InvalidIdError, LiftMemoryError
from lift_memory.ids import default_doc_id, document_text, validate_id


@pytest.mark.parametrize("good", ["a", "doc-1", "Report_2024.v2", "x" * 128])
def test_safe_ids_pass(good):
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "../etc", "a/b", "a\\b", ".hidden", "-x", "a..b", "x" * 129, "con", "sp ace", "é", None, 3]
)
def test_unsafe_ids_are_refused(bad):
    with pytest.raises(InvalidIdError, match="not a safe name"):
        validate_id(bad)


def test_errors_subclass_builtins():
    with pytest.raises(ValueError):
        validate_id("../x")
    assert issubclass(InvalidIdError, LiftMemoryError)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("", "empty"),
        ("  \n\t ", "empty"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
        ("text\x00with NUL", "binary"),
        ("\x01\x02\x03" * 10 + "abc", "binary"),
        (42, "str or bytes"),
    ],
)
def test_bad_documents(document, message):
    with pytest.raises(InvalidDocumentError, match=message):
        document_text(document)


def test_bytes_are_decoded_and_ids_derive_from_content():
    assert document_text("héllo".encode()) == "héllo"
    assert default_doc_id("same") == default_doc_id("same") != default_doc_id("other")
    validate_id(default_doc_id("anything"))
