"""Every expected failure is one typed line: bad configuration and call-time arguments, a model whose weights
differ, CUDA that is not there, a root this user may only read, and a question writer that never returns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import ALPHA, BETA, cli, one_line, open_memory, witness

from lift_memory import LiftMemory, MemoryConfig
from lift_memory.config import GenerationConfig, RetrievalConfig, TasksConfig, TrainConfig
from lift_memory.errors import AdapterMismatchError, ConfigError, StorageError

CONFIGS = {
    "max_steps=0": (lambda: TrainConfig(max_steps=0), r"train\.max_steps=0: .*; allowed: 1 <= value"),
    "nested": (lambda: MemoryConfig(train={"learning_rate": -1}), r"train\.learning_rate=-1: .*0 < value"),
    "unknown field": (lambda: MemoryConfig(trian={}), r"trian"),
    "wrong type": (lambda: GenerationConfig(max_new_tokens="lots"), r"generation\.max_new_tokens='lots'"),
    "cross-field": (lambda: TrainConfig(max_steps=None), r"max_steps, max_tokens, max_seconds or max_epochs"),
    "probability": (lambda: TasksConfig(contextualize=2.0), r"tasks\.contextualize=2\.0: .*value <= 1"),
    "port": (lambda: RetrievalConfig(port=0), r"retrieval\.port=0"),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_a_bad_configuration_is_one_line_that_names_the_field_and_its_range(case):
    build, pattern = CONFIGS[case]
    with pytest.raises(ConfigError, match=pattern) as caught:
        build()
    one_line(caught.value)
    assert isinstance(caught.value, ValueError)  # also the builtin it stands for


CALLS = {
    "ask k=0": lambda m: m.ask("What?", "alpha", k=0),
    "ask max_new_tokens=0": lambda m: m.ask("What?", "alpha", max_new_tokens=0),
    "ask temperature=-1": lambda m: m.ask("What?", "alpha", temperature=-1.0),
    "ask an empty question": lambda m: m.ask("   ", "alpha"),
    "ask an unknown mode": lambda m: m.ask("What?", "alpha", mode="telepathy"),
    "stream max_seconds=0": lambda m: m.stream("What?", "alpha", max_seconds=0),
    "retrieve k=-3": lambda m: m.retrieve("Ada", k=-3),
    "retrieve a non-string": lambda m: m.retrieve(42),
    "memorize a title that is not text": lambda m: m.memorize(BETA, doc_id="beta", title=7),
    "memorize an unsafe namespace": lambda m: m.memorize(BETA, doc_id="beta", namespace="../x"),
}


@pytest.mark.parametrize("case", CALLS)
def test_call_time_arguments_are_validated_like_the_configuration(case, tmp_path, tiny_model_dir, fast_config):
    from lift_memory.errors import InvalidIdError

    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, fast_config) as memory:
        memory.memorize(ALPHA, doc_id="alpha", train=False, index=False)
    memory = open_memory(root, tiny_model_dir, fast_config)
    with pytest.raises((ConfigError, InvalidIdError)) as caught:
        CALLS[case](memory)
    one_line(caught.value)
    if case.startswith(("ask", "retrieve")) and "mode" not in case:
        assert memory._engine.loaded is None and not memory.retrieval.opened  # refused before loading anything


@pytest.mark.parametrize("flags", [["--k", "0"], ["--max-new-tokens", "-1"], ["--k", "many"]])
def test_cli_flags_out_of_range_are_usage_errors(flags, tmp_path):
    result = cli("ask", "alpha", "What?", *flags, "--root", str(tmp_path))
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith(f"lift-memory ask: error: argument {flags[0]}: "), result.stderr


def test_the_fingerprint_covers_every_byte_of_the_weights(tmp_path, tiny_model_dir, fast_config):
    """The folder remembers the model's name; the fingerprint notices weights changed under that name."""
    from lift_memory.files import file_digest

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    with open_memory(tmp_path / "root", model, fast_config) as memory:
        memory.memorize(ALPHA, doc_id="alpha")
    weights = model / "model.safetensors"
    before = file_digest(weights)
    data = bytearray(weights.read_bytes())
    data[-4:] = bytes(b ^ 0xFF for b in data[-4:])  # the last tensor's last bytes: far past any header
    weights.write_bytes(bytes(data))
    assert file_digest(weights) != before
    with open_memory(tmp_path / "root", model, fast_config) as memory, pytest.raises(AdapterMismatchError) as caught:
        memory.ask("What saves nine?", "alpha", mode="lift")
    assert "fingerprint" in one_line(caught.value)


def test_the_weights_hash_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    from lift_memory.files import file_digest

    monkeypatch.setenv("LIFT_MEMORY_CACHE", str(tmp_path / "cache"))
    file = tmp_path / "w.safetensors"
    file.write_bytes(b"a" * 4096)
    first = file_digest(file)
    stat = file.stat()
    file.write_bytes(b"b" * 4096)
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the cached hash is used
    assert file_digest(file) == first
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # touched: hashed again
    assert file_digest(file) != first


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error(tmp_path, tiny_model_dir, fast_config):
    config = fast_config.model_copy(update={"model": fast_config.model.model_copy(update={"device": "cuda"})})
    memory = open_memory(tmp_path / "root", tiny_model_dir, config)
    with pytest.raises(ConfigError, match="no usable CUDA device; use device='cpu'") as caught:
        memory.memorize(ALPHA)
    one_line(caught.value)
    assert memory.list() == []


class BlockingWriter:
    """A question writer that blocks its event loop (synchronous sleep, so no timeout can cancel it)."""

    identity = "blocking"
    prompt_version = "1"

    def plan(self, text):
        return [(0, len(text) // 2), (len(text) // 2, len(text))]

    async def agenerate(self, text, unit, attempt):
        time.sleep(30)
        return []


@pytest.mark.slow
def test_a_writer_that_blocks_cannot_hold_memorize_past_its_deadline(tmp_path, tiny_model_dir, fast_config):
    config = fast_config.model_copy(update={"tasks": TasksConfig(timeout=0.5, max_attempts=1, cache=False)})
    memory = open_memory(tmp_path / "root", tiny_model_dir, config, generator=BlockingWriter())
    started = time.monotonic()
    record = memory.memorize(ALPHA, doc_id="alpha")
    # deadline: 1 wave x 1 try x (0.5 s + 2 s backoff) + 1 s; training and indexing take about a second more
    assert time.monotonic() - started < 10
    assert record.trained and record.extra["synthesis"]["skip_reasons"] == {"abandoned": 2}


_READER = """
import json, sys
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from fault_helpers import ALPHA, BETA, open_memory
from lift_memory import MemoryConfig
from lift_memory.errors import LiftMemoryError
memory = open_memory(sys.argv[1], sys.argv[2], MemoryConfig())
out = {"list": [r.doc_id for r in memory.list()]}
out["search"] = sorted({h.doc_id for h in memory.retrieve("Ada Lovelace and Alan Turing")})
out["rag"] = memory.ask("Who is named?", mode="rag", max_new_tokens=4).route
out["lift"] = memory.ask("Who is named?", "alpha", mode="lift", max_new_tokens=4).route
for name, write in [("memorize", lambda: memory.memorize(BETA, doc_id="beta")), ("forget", lambda: memory.forget("alpha"))]:
    try:
        write()
        out[name] = "ok"
    except LiftMemoryError as exc:
        out[name] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


@pytest.fixture
def read_only(tmp_path):
    """Makes a folder read-only for this process: a read-only bind mount where this user may mount (root,
    whom permissions do not stop: EROFS), else its permissions (EACCES)."""
    mounts = []

    def make(folder: Path) -> Path:
        view = folder.with_name(folder.name + "-ro")
        view.mkdir()
        bind = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
        if bind.returncode == 0:
            mounts.append(view)
            subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
            return view
        if os.geteuid() == 0:
            pytest.skip(f"root, and no read-only bind mount here ({bind.stderr.decode().strip()})")
        subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
        mounts.append(folder)
        return folder

    yield make
    for view in mounts:
        if subprocess.run(["umount", str(view)], capture_output=True).returncode != 0:
            subprocess.run(["chmod", "-R", "u+w", str(view)], check=False)


@pytest.mark.slow
def test_a_root_this_user_may_only_read(read_only, tmp_path, tiny_model_dir):
    """ask, search and list work on a read-only root (in a fresh process); writes fail with one StorageError
    line each, and nothing changes."""
    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, MemoryConfig()) as memory:
        memory.memorize(ALPHA, doc_id="alpha")
        before = witness(memory)
    view = read_only(root)
    tests = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", _READER, str(view), str(tiny_model_dir), str(tests), str(tests / "faults")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["list"] == ["alpha"] and out["search"] == ["alpha"]
    assert out["rag"] == "rag" and out["lift"] == "lift"
    for write in ("memorize", "forget"):
        kind, message = out[write]
        assert kind == StorageError.__name__ and "\n" not in message, out[write]
    with open_memory(root, tiny_model_dir, MemoryConfig()) as memory:
        assert witness(memory) == before


def test_a_root_that_is_a_file_and_a_root_under_a_file_are_one_line_each(tmp_path, tiny_model_dir):
    (tmp_path / "afile").write_text("a file where the memory folder should be")
    (tmp_path / "doc.txt").write_text(ALPHA)
    for args in (["list", "--root", str(tmp_path / "afile")], ["memorize", str(tmp_path / "doc.txt"), "--root",
                 str(tmp_path / "afile" / "sub"), "--model", str(tiny_model_dir)]):  # fmt: skip
        result = cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("lift-memory: error:"), result


def test_lift_memory_rejects_a_model_that_is_not_there(tmp_path):
    memory = LiftMemory(root=tmp_path, model=str(tmp_path / "no-such-model"), progress=False)
    with pytest.raises(Exception) as caught:
        memory.memorize(ALPHA)
    one_line(caught.value)
