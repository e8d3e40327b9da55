"""kill -9 and Ctrl-C in the middle of writes: every memory stored before is intact, every time.

The writers are real processes (``fault_worker.py``, or the ``lift-memory`` command for Ctrl-C); they are
struck while training, before the index changes, and with the index half-changed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from fault_helpers import ALPHA, BETA, GAMMA, Worker, cli, open_memory, witness

pytestmark = pytest.mark.slow


@pytest.fixture
def stocked(tmp_path, tiny_model_dir, fast_config):
    """A memory root holding 'alpha' (default namespace) and 'beta' (namespace 'other'), and its witness."""
    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, fast_config) as memory:
        memory.memorize(ALPHA, doc_id="alpha")
        memory.memorize(BETA, doc_id="beta", namespace="other")
        before = witness(memory)
    (tmp_path / "gamma.txt").write_text(GAMMA)
    return root, before, tmp_path / "gamma.txt"


CASES = {
    "replace, killed while training": (["memorize", "alpha", "--replace", "--steps", "100000"], "TRAINING"),
    "replace, killed before the index changes": (["memorize", "alpha", "--replace", "--stall-at", "embed"], "INDEXING"),
    "replace, killed with the index half-changed": (
        ["memorize", "alpha", "--replace", "--stall-at", "log"],
        "INDEXING",
    ),
    "new document, killed with the index half-changed": (["memorize", "gamma", "--stall-at", "log"], "INDEXING"),
    "forget, killed with the index half-changed": (["forget", "alpha", "--stall-at", "log"], "INDEXING"),
}


@pytest.mark.parametrize("case", CASES)
def test_kill_9_mid_write_loses_and_alters_nothing(case, stocked, tiny_model_dir, fast_config):
    root, before, gamma = stocked
    args, moment = CASES[case]
    if args[0] == "memorize":
        args = [*args[:2], str(gamma), *args[2:]]
    worker = Worker(root, tiny_model_dir, *args)
    worker.wait_for(moment)
    worker.kill()
    with open_memory(root, tiny_model_dir, fast_config) as memory:
        after = witness(memory)  # a fresh process rolls back what the dead writer left, then looks
        assert after == before
        assert memory.retrieve("violin strings orchard ferry", k=5) == [] or all(
            hit.doc_id == "alpha" for hit in memory.retrieve("violin strings orchard ferry", k=5)
        )  # no chunk of the killed write's text is ever shown
        assert memory.memorize(GAMMA, doc_id="alpha", replace=True).indexed  # and the next write works
    assert not list(root.rglob(".journal.json"))


def test_two_kills_in_a_row_and_a_reader_in_between(stocked, tiny_model_dir, fast_config):
    root, before, gamma = stocked
    first = Worker(root, tiny_model_dir, "memorize", "alpha", str(gamma), "--replace", "--stall-at", "log")
    first.wait_for("INDEXING")
    first.kill()
    # A reader that cannot write (or just reads) sees the committed memory while the journal is still there.
    reader = open_memory(root, tiny_model_dir, fast_config)
    assert reader.bank.text("alpha") == ALPHA and reader.bank.ids() == ["alpha", "beta"]
    second = Worker(root, tiny_model_dir, "forget", "alpha", "--stall-at", "log")  # recovers, then is killed too
    second.wait_for("INDEXING")
    second.kill()
    with open_memory(root, tiny_model_dir, fast_config) as memory:
        assert witness(memory) == before


def _interrupt_cli(root, model_dir, file, after: str | float) -> tuple[subprocess.Popen, float, str]:
    """Start `lift-memory memorize`, send SIGINT at a moment (a pattern on stderr, or seconds), return the process,
    the seconds it took to exit after the signal, and its stderr."""
    import os
    import shutil
    import sys

    command = shutil.which("lift-memory", path=os.path.dirname(sys.executable))
    proc = subprocess.Popen(
        [command, "memorize", str(file), "--id", "alpha", "--replace", "--root", str(root), "--model", str(model_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "LIFT_MEMORY_PROGRESS": "always"},  # its bar is the signal
    )
    seen = ""
    if isinstance(after, str):
        while not re.search(after, seen):
            char = proc.stderr.read(1)
            assert char, f"exited before {after!r}: {seen}"
            seen += char
    else:
        time.sleep(after)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    return proc, time.monotonic() - sent, seen + err


@pytest.mark.parametrize("moment", ["while loading", "when training starts", "deep in training"])
def test_ctrl_c_through_the_cli_stops_within_two_seconds_and_keeps_the_memory(moment, tmp_path, tiny_model_dir):
    from lift_memory import MemoryConfig

    root = tmp_path / "root"
    with open_memory(root, tiny_model_dir, MemoryConfig(), embedder=None) as memory:
        memory.memorize(ALPHA, doc_id="alpha", train=False)  # the CLI's own settings and default embedder
    with open_memory(root, tiny_model_dir, MemoryConfig(), embedder=None) as memory:
        before = witness(memory)
    (tmp_path / "long.txt").write_text(BETA * 20)
    after = {
        "while loading": 1.0,
        "when training starts": "memorizing",
        "deep in training": r"memorizing[^\n]*\| ([5-9]|[1-9]\d+)/",
    }[moment]  # the bar may skip any one step
    proc, seconds, stderr = _interrupt_cli(root, tiny_model_dir, tmp_path / "long.txt", after)
    assert proc.returncode == 130, stderr
    assert seconds < 2.5, f"took {seconds:.1f} s to stop"
    assert "Traceback" not in stderr and stderr.count("lift-memory: interrupted") == 1, stderr
    with open_memory(root, tiny_model_dir, MemoryConfig(), embedder=None) as memory:
        assert witness(memory) == before
    assert not list(root.rglob(".journal.json"))


def test_cli_errors_are_one_line_with_exit_1(stocked, tiny_model_dir):
    root, _, gamma = stocked
    (root / "docs" / "beta" / "manifest.json").write_text("{damaged")
    common = ["--root", str(root), "--model", str(tiny_model_dir)]
    cases = {
        "unknown id": ["ask", "nope", "what?", *common],
        "damaged memory": ["ask", "beta", "what?", *common],
        "existing id": ["memorize", str(gamma), "--id", "alpha", *common],
        "unsafe id": ["forget", "../etc", *common],
        "missing file": ["memorize", str(root / "no-such-file.txt"), *common],
        "empty document": ["memorize", "/dev/null", *common],
    }
    for case, args in cases.items():
        result = cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("lift-memory: error:"), (
            case,
            result.stderr,
        )
    listed = cli("list", "--json", *common)
    assert listed.returncode == 0 and '"alpha"' in listed.stdout and "damaged" in listed.stderr
