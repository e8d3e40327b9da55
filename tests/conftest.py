"""Fixtures: tiny models built in code, and the cached builtin:tiny (helpers in ``lift_test_helpers``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lift_test_helpers import free_port, save_tiny_llama


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """Same architecture and tokenizer as ``tiny_model_dir``, different weights."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-other"), seed=1)


@pytest.fixture(scope="session")
def builtin_dir() -> Path:
    """builtin:tiny, built once into the user cache (a couple of minutes on a fresh machine)."""
    from lift_memory.builtin import ensure_builtin

    return ensure_builtin(progress=False)


@pytest.fixture
def fast_config():
    """A MemoryConfig that trains a few steps on the tiny random model."""
    from lift_memory.config import GenerationConfig, MemoryConfig, SegmentConfig, TrainConfig

    return MemoryConfig(
        segment=SegmentConfig(length=64, window=16),
        generation=GenerationConfig(max_new_tokens=8),
        train=TrainConfig(max_steps=3, batch_tokens=512, plateau_patience=None, warmup_steps=1),
    )


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run` server on 127.0.0.1, started for these tests and stopped after them."""
    chroma = shutil.which("chroma", path=os.path.dirname(sys.executable)) or shutil.which("chroma")
    if chroma is None:
        pytest.fail("the `chroma` command (from chromadb) is not installed")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [chroma, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma run did not start within 30 s")
    yield port
    proc.terminate()
    proc.wait(timeout=10)
