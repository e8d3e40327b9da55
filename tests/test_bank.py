from __future__ import annotations

import pytest
import torch

from lift_memory.bank import AdapterBank
from lift_memory.errors import DamagedMemoryError, InvalidIdError, UnknownDocumentError


def _save(bank, doc_id="d1", text="hello", value=1.0):
    state = {"w": torch.full((2, 2), value)}
    with bank.transaction(doc_id):
        bank.save(doc_id, text=text, manifest={"doc_id": doc_id, "adapter": {"kind": "lora"}}, state=state)


def test_round_trip(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank)
    assert "d1" in bank and bank.ids() == ["d1"]
    assert bank.text("d1") == "hello"
    assert torch.equal(bank.load_state("d1")["w"], torch.ones(2, 2))
    manifest = bank.manifest("d1")
    assert manifest["format"] == 1 and manifest["adapter"]["file"].endswith(".safetensors")


def test_replacing_leaves_only_the_new_files(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank, text="old", value=1.0)
    _save(bank, text="new", value=2.0)
    files = sorted(p.name for p in (tmp_path / "docs" / "d1").iterdir())
    assert len(files) == 3 and "manifest.json" in files
    assert bank.text("d1") == "new" and bank.load_state("d1")["w"][0, 0] == 2.0


def test_a_failed_write_keeps_the_earlier_memory(tmp_path, monkeypatch):
    bank = AdapterBank(tmp_path)
    _save(bank, text="old", value=1.0)
    import lift_memory.bank as bank_module

    real = bank_module.atomic_write

    def crash_on_manifest(path, data):
        if path.name == "manifest.json":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(bank_module, "atomic_write", crash_on_manifest)
    with pytest.raises(OSError, match="disk full"):
        _save(bank, text="new", value=2.0)
    monkeypatch.undo()
    assert bank.text("d1") == "old" and bank.load_state("d1")["w"][0, 0] == 1.0


def test_unknown_and_unsafe_ids(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank, "known")
    with pytest.raises(UnknownDocumentError, match=r"'nope'.*known"):
        bank.manifest("nope")
    with pytest.raises(InvalidIdError):
        bank.text("../escape")


def test_delete_and_damaged_manifest(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank, "a")
    _save(bank, "b")
    bank.delete("a")
    assert bank.ids() == ["b"]
    (tmp_path / "docs" / "b" / "manifest.json").write_text("{not json")
    with pytest.raises(DamagedMemoryError, match=r"'b' is damaged.*replace=True"):
        bank.manifest("b")
    bank.delete("b")  # the way out works on a damaged record
    assert bank.ids() == []
