"""Writes that fail part-way (a full disk, a store that fails on a later step, a callback that raises) change
nothing: the error is one typed line, the earlier memories are intact, and no partial file is left behind."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest
from fault_helpers import ALPHA, BETA, GAMMA, one_line, open_memory, stored_files, witness

import lift_memory.files
from lift_memory.config import RetrievalConfig
from lift_memory.errors import StorageError, StoreUnavailableError
from lift_memory.retrieval.store import ChromaStore

OPERATIONS = {
    "replace": lambda m: m.memorize(BETA, doc_id="alpha", replace=True),
    "new document": lambda m: m.memorize(GAMMA, doc_id="gamma"),
    "new namespace": lambda m: m.memorize(ALPHA, doc_id="alpha", namespace="elsewhere"),
    "forget": lambda m: m.forget("alpha"),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory, tiny_model_dir):
    """A closed memory root holding 'alpha' and 'beta' (namespace 'other'), copied for each case."""
    from lift_memory.config import GenerationConfig, MemoryConfig, SegmentConfig, TrainConfig

    config = MemoryConfig(
        segment=SegmentConfig(length=64, window=16),
        generation=GenerationConfig(max_new_tokens=8),
        train=TrainConfig(max_steps=3, batch_tokens=512, plateau_patience=None, warmup_steps=1),
    )
    root = tmp_path_factory.mktemp("template") / "root"
    with open_memory(root, tiny_model_dir, config) as memory:
        memory.memorize(ALPHA, doc_id="alpha")
        memory.memorize(BETA, doc_id="beta", namespace="other")
    return root, config


def _copy(template, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(template[0], root)
    return root


def _stray(root) -> list[str]:
    """Temporary files and folders a failed write could leave (atomic writes, journals, BM25 swaps, trash)."""
    patterns = [".*.tmp*", ".journal.json", ".trash-*", "*.tmp-*", "*.old-*", ".folder-id-*"]
    found = {p for pattern in patterns for p in root.rglob(pattern)}
    return sorted(str(p.relative_to(root)) for p in found if not p.name.startswith(".manifest.json"))


def _fsyncs(operation, root, model_dir, config) -> int:
    counted = []
    real = os.fsync

    def count(fd):
        counted.append(fd)
        return real(fd)

    with pytest.MonkeyPatch.context() as patch, open_memory(root, model_dir, config) as memory:
        memory.list()
        patch.setattr(lift_memory.files.os, "fsync", count)
        OPERATIONS[operation](memory)
    return len(counted)


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_full_disk_at_every_write_of_an_operation_changes_nothing(operation, template, tmp_path, tiny_model_dir):
    """ENOSPC at the n-th durable write, for every n an operation makes: a typed line, or success where the
    failing write was a cache; in both cases no stray file, and on failure the witness is unchanged."""
    config = template[1]
    writes = _fsyncs(operation, _copy(template, tmp_path / "count"), tiny_model_dir, config)
    assert writes >= 2
    failures = 0
    for n in range(1, writes + 1):
        root = _copy(template, tmp_path / f"n{n}")
        with open_memory(root, tiny_model_dir, config) as memory:
            before = witness(memory)
        calls = []

        def full_disk(fd, n=n, calls=calls):
            calls.append(fd)
            if len(calls) == n:
                raise OSError(errno.ENOSPC, "No space left on device")
            return os.fdatasync(fd)

        with pytest.MonkeyPatch.context() as patch, open_memory(root, tiny_model_dir, config) as memory:
            memory.list()
            patch.setattr(lift_memory.files.os, "fsync", full_disk)
            try:
                OPERATIONS[operation](memory)
            except StorageError as exc:
                assert "no space left" in one_line(exc)
                failures += 1
                patch.undo()
                assert witness(memory) == before, f"write {n} of {writes}"
        assert _stray(root) == [], f"write {n} of {writes}"
    assert failures >= writes - 2  # at most the task cache and the fingerprint cache are allowed to fail quietly


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs: a real file system that fills up (skipped where mounting is not permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the ENOSPC sweep covers it")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk, leave: int) -> None:
    stat = os.statvfs(disk)
    with open(disk / "filler", "ab") as fh:
        fh.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave, 0))


@pytest.mark.slow
@pytest.mark.parametrize("index", [True, False], ids=["indexed", "not indexed"])
def test_a_really_full_disk(index, small_disk, template, tiny_model_dir):
    config = template[1]
    if not index:
        config = config.model_copy(update={"retrieval": RetrievalConfig(enabled=False)})
    root = small_disk / "root"
    with open_memory(root, tiny_model_dir, config) as memory:
        memory.memorize(ALPHA, doc_id="alpha")
        memory.memorize(BETA, doc_id="beta", index=index)
        before = witness(memory)
        outcomes = set()
        for leave in [100_000, 30_000, 8_000, 0]:
            for name, operation in OPERATIONS.items():
                if name == "new namespace" and not index:
                    continue
                _fill(small_disk, leave)
                try:
                    operation(memory)
                    outcomes.add("ok")
                except StorageError as exc:
                    one_line(exc)
                    outcomes.add("full")
                (small_disk / "filler").unlink()
                now = witness(memory)
                if now != before:  # it succeeded: the new state is the baseline, and put 'alpha' back
                    memory.memorize(ALPHA, doc_id="alpha", replace=True)
                    memory.forget("gamma") if "gamma" in memory.bank else None
                    before = witness(memory)
                assert _stray(root) == []
    assert "full" in outcomes


def test_a_store_failing_on_a_later_step_undoes_the_earlier_ones(template, tmp_path, tiny_model_dir, monkeypatch):
    root = _copy(template, tmp_path)
    config = template[1]
    with open_memory(root, tiny_model_dir, config) as memory:
        before = witness(memory)
        real_delete = ChromaStore.delete

        def down_on_delete(self, namespace, doc_id):
            raise StoreUnavailableError("the Chroma server at 127.0.0.1:9 is unreachable after 3 attempts")

        # Moving 'alpha' to another namespace adds its chunks there first, then deletes them where they were.
        monkeypatch.setattr(ChromaStore, "delete", down_on_delete)
        with pytest.raises(StoreUnavailableError):
            memory.memorize(ALPHA, doc_id="alpha", namespace="elsewhere")
        monkeypatch.setattr(ChromaStore, "delete", real_delete)
        assert witness(memory) == before
        assert memory.retriever.store.chunks("elsewhere", "alpha") == []  # the earlier step was undone


def test_a_callback_that_raises_changes_nothing(template, tmp_path, tiny_model_dir):
    root = _copy(template, tmp_path)
    with open_memory(root, tiny_model_dir, template[1]) as memory:
        before = witness(memory)

        def broken(info):
            raise RuntimeError("a bug in the user's callback")

        with pytest.raises(RuntimeError, match="user's callback"):
            memory.memorize(BETA, doc_id="alpha", replace=True, callbacks=[broken])
        assert witness(memory) == before and stored_files(root) == before["files"]
