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


@pytest.mark.slow
def test_agent_memory(builtin_dir, tmp_path):
    out = _run(str(EXAMPLES / "agent_memory.py"), "--root", str(tmp_path), "--max-steps", "5", "--tokens", "800")
    handed, _, later = out.partition("job: ready")
    assert "not fine-tuned yet: its adapter trains in the background" in handed and "asked at once" in handed
    assert "trained 5 steps (max_steps) in the background" in later and "adapter notes" in later
    assert "tokens trained" in later and "cost:" in handed
