"""The examples run end to end, offline, on builtin:tiny (small budgets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_document_assistant(builtin_dir, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("The harbour master is called Ines. " * 30 + "Boats leave at dawn. " * 30)
    out = _run(
        str(EXAMPLES / "document_assistant.py"), str(doc), "-q", "The harbour master is called", "--max-steps", "30"
    )
    assert "memorized" in out and "route:" in out


@pytest.mark.slow
def test_langchain_agent(builtin_dir, tmp_path):
    out = _run(str(EXAMPLES / "langchain_agent.py"), "--root", str(tmp_path), "--max-steps", "20")
    assert "memorized as 'release-notes'" in out and "chain:" in out and "retrieved: release-notes" in out
    assert "store: [('pref'," in out
