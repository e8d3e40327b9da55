from __future__ import annotations

import pytest
import torch

from lift_memory.bank import AdapterBank
from lift_memory.errors import DamagedMemoryError, InvalidIdError, UnknownDocumentError
from lift_memory.manifest import Manifest


def _manifest(doc_id, text="", **fields):
    base = {"name": "m", "fingerprint": "f", "tokenizer": "t"}
    return Manifest(doc_id=doc_id, doc_hash="h", n_chars=len(text), n_tokens=1, base=base, reason="test", **fields)


def _save(bank, doc_id="d1", text="hello", value=1.0):
    state = {"w": torch.full((2, 2), value)}
    with bank.transaction(doc_id):
        bank.save(doc_id, text=text, manifest=_manifest(doc_id, text, adapter={"kind": "lora"}), state=state)


def test_round_trip(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank)
    assert "d1" in bank and bank.ids() == ["d1"]
    assert bank.text("d1") == "hello"
    assert torch.equal(bank.load_state("d1")["w"], torch.ones(2, 2))
    manifest = bank.manifest("d1")
    assert manifest.format == 1 and manifest.adapter_file.endswith(".safetensors")
    assert Manifest.model_validate_json((tmp_path / "docs" / "d1" / "manifest.json").read_bytes()) == manifest


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
    with bank.transaction("a"):
        bank.delete("a")
    assert bank.ids() == ["b"]
    (tmp_path / "docs" / "b" / "manifest.json").write_text("{not json")
    with pytest.raises(DamagedMemoryError, match=r"'b' is damaged.*replace=True"):
        bank.manifest("b")
    with bank.transaction("b"):
        bank.delete("b")  # the way out works on a damaged record
    assert bank.ids() == []


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_readers_see_the_committed_memory_until_the_write_commits(tmp_path):
    bank, reader = AdapterBank(tmp_path), AdapterBank(tmp_path)  # as in two processes
    _save(bank, text="old", value=1.0)
    with bank.transaction("d1"):
        bank.save("d1", text="new", manifest=_manifest("d1"), state=None)
        assert bank.text("d1") == "new"  # the writer sees its own write
        assert reader.text("d1") == "old" and torch.equal(reader.load_state("d1")["w"], torch.ones(2, 2))
        with bank.transaction("d2"):
            bank.save("d2", text="fresh", manifest=_manifest("d2"), state=None)
            assert "d2" not in reader and reader.ids() == ["d1"]
    assert reader.text("d1") == "new" and reader.ids() == ["d1", "d2"]
    assert not list(tmp_path.rglob(".journal.json"))


def test_a_failed_transaction_rolls_back_everything_it_journaled(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank, text="old", value=1.0)
    before = _files(tmp_path / "docs")
    undone = []
    with pytest.raises(KeyboardInterrupt), bank.transaction("d1", undo=lambda d, u: undone.append((d, u))) as txn:
        txn.keep("index", {"ns": "before"})
        txn.keep("index", {"ns": "later"})  # the first record is the state before the transaction
        bank.save("d1", text="new", manifest=_manifest("d1"), state=None)
        raise KeyboardInterrupt
    assert undone == [("d1", {"index": {"ns": "before"}})]
    assert _files(tmp_path / "docs") == before
    with pytest.raises(RuntimeError), bank.transaction("d2"):
        bank.save("d2", text="fresh", manifest=_manifest("d2"), state=None)
        raise RuntimeError
    assert bank.ids() == ["d1"] and not (tmp_path / "docs" / "d2").exists()


def test_a_dead_writers_journal_is_rolled_back_by_the_next_process(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank, text="old", value=1.0)
    before = _files(tmp_path / "docs")
    # What a writer killed after saving the new version but before committing leaves on disk:
    with bank.transaction("d1") as txn:
        bank.save("d1", text="new", manifest=_manifest("d1"), state=None)
        journal = (tmp_path / "docs" / "d1" / ".journal.json").read_bytes()
        left = _files(tmp_path / "docs")
    for name, data in left.items():
        (tmp_path / "docs" / name).write_bytes(data)
    (tmp_path / "docs" / "d1" / ".journal.json").write_bytes(journal)
    assert txn.doc_id == "d1"
    fresh = AdapterBank(tmp_path)
    assert fresh.text("d1") == "old"  # readers see the committed memory at once
    undone = []
    assert fresh.recover(undo=lambda d, u: undone.append(d)) == ["d1"] and undone == []  # no undo data kept
    assert _files(tmp_path / "docs") == before


def test_a_second_writer_waits_for_the_lock_then_gives_up(tmp_path):
    import threading

    from lift_memory.errors import DocumentBusyError

    first, second = AdapterBank(tmp_path), AdapterBank(tmp_path, lock_timeout=0.2)  # as two processes
    _save(first, text="old")
    inside, release = threading.Event(), threading.Event()

    def hold():
        with first.transaction("d1"):
            first.save("d1", text="first", manifest=_manifest("d1"), state=None)
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(10)
    busy = r"'d1' is being written by another process \(waited 0.2 s\)"
    with pytest.raises(DocumentBusyError, match=busy), second.transaction("d1"):
        pass
    release.set()
    holder.join()
    assert second.text("d1") == "first"


def test_a_manifest_of_a_newer_format_or_missing_a_field_is_a_damaged_memory(tmp_path):
    bank = AdapterBank(tmp_path)
    _save(bank, doc_id="newer")
    _save(bank, doc_id="partial")
    path = tmp_path / "docs" / "newer" / "manifest.json"
    path.write_text(path.read_text().replace('"format": 1', '"format": 7'))
    with pytest.raises(DamagedMemoryError, match="format 7, written by a newer lift-memory"):
        bank.manifest("newer")
    path = tmp_path / "docs" / "partial" / "manifest.json"
    path.write_text(path.read_text().replace('"doc_hash": "h",', ""))
    with pytest.raises(DamagedMemoryError, match="doc_hash: Field required"):
        bank.manifest("partial")
